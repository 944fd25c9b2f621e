//! `occurred_at` to epoch milliseconds, as Python 3.11's `datetime.fromisoformat` reads a value that
//! matched the contract's RFC 3339 pattern: fractions truncated to microseconds, an offset of any
//! number of minutes short of a day, calendar dates only.

/// What every table's DateTime columns hold: seconds as an unsigned 32-bit number.
pub const MAX_TIME_MS: i64 = (u32::MAX as i64) * 1000;

#[derive(Debug, PartialEq, Eq)]
pub enum TimeError {
    Invalid,
    BeforeEpoch,
    AfterMax,
}

impl TimeError {
    pub fn detail(&self) -> &'static str {
        match self {
            TimeError::Invalid => "occurred_at: not a valid date and time",
            TimeError::BeforeEpoch => "occurred_at: before 1970-01-01T00:00:00Z, the earliest time the tables can hold",
            TimeError::AfterMax => "occurred_at: after 2106-02-07T06:28:15Z, the latest time the tables can hold",
        }
    }
}

fn digits(b: &[u8]) -> Option<i64> {
    b.iter().try_fold(0i64, |n, &c| c.is_ascii_digit().then(|| n * 10 + i64::from(c - b'0')))
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days from 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Milliseconds since the epoch of a value that matched the pattern
/// `^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$`.
pub fn parse_ms(text: &str) -> Result<i64, TimeError> {
    let b = text.as_bytes();
    // The pattern's \d is any Unicode digit; Python's parser reads ASCII digits only.
    if !text.is_ascii() || b.len() < 20 {
        return Err(TimeError::Invalid);
    }
    let num = |r: std::ops::Range<usize>| digits(&b[r]).ok_or(TimeError::Invalid);
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let mut at = 19;
    let mut micros = 0i64;
    if b[at] == b'.' {
        let start = at + 1;
        let mut end = start;
        while end < b.len() && b[end].is_ascii_digit() {
            end += 1;
        }
        let frac = &b[start..end];
        if frac.is_empty() {
            return Err(TimeError::Invalid);
        }
        for i in 0..6 {
            micros = micros * 10 + frac.get(i).map_or(0, |&c| i64::from(c - b'0'));
        }
        at = end;
    }
    let offset_min = match &b[at..] {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let hours = digits(&[*h1, *h2]).ok_or(TimeError::Invalid)?;
            let minutes = digits(&[*m1, *m2]).ok_or(TimeError::Invalid)?;
            let total = hours * 60 + minutes;
            if total >= 24 * 60 {
                return Err(TimeError::Invalid);
            }
            if *sign == b'-' {
                -total
            } else {
                total
            }
        }
        _ => return Err(TimeError::Invalid),
    };
    if !(1..=9999).contains(&year)
        || !(1..=12).contains(&month)
        || day < 1
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 59
    {
        return Err(TimeError::Invalid);
    }
    let secs = days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second - offset_min * 60;
    if secs < 0 {
        return Err(TimeError::BeforeEpoch);
    }
    let ms = secs * 1000 + micros / 1000;
    if ms > MAX_TIME_MS {
        return Err(TimeError::AfterMax);
    }
    Ok(ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_python_reads() {
        assert_eq!(parse_ms("2024-01-01T00:00:00Z"), Ok(1_704_067_200_000));
        assert_eq!(parse_ms("2024-01-01t00:00:00.1239999+00:00"), Ok(1_704_067_200_123));
        assert_eq!(parse_ms("2024-01-01 00:00:00+00:60"), Ok(1_704_063_600_000));
        assert_eq!(parse_ms("2024-01-01T00:00:00+23:59"), Ok(1_703_980_860_000));
        assert_eq!(parse_ms("1970-01-01T00:00:00Z"), Ok(0));
        assert_eq!(parse_ms("2106-02-07T06:28:15Z"), Ok(MAX_TIME_MS));
    }

    #[test]
    fn refuses_what_python_refuses() {
        for bad in [
            "2024-01-01T24:00:00Z",
            "2024-01-01T23:59:60Z",
            "2024-01-01T00:00:00+24:00",
            "2024-02-30T00:00:00Z",
            "2023-02-29T00:00:00Z",
            "0000-01-01T00:00:00Z",
            "2024-13-01T00:00:00Z",
            "２０２４-01-01T00:00:00Z",
        ] {
            assert_eq!(parse_ms(bad), Err(TimeError::Invalid), "{bad}");
        }
        assert_eq!(parse_ms("1969-12-31T23:59:59Z"), Err(TimeError::BeforeEpoch));
        assert_eq!(parse_ms("1970-01-01T00:30:00+01:00"), Err(TimeError::BeforeEpoch));
        assert_eq!(parse_ms("2106-02-07T06:28:16Z"), Err(TimeError::AfterMax));
        assert_eq!(parse_ms("2106-02-07T06:28:15.001Z"), Err(TimeError::AfterMax));
        assert_eq!(parse_ms("2024-02-29T00:00:00Z"), Ok(1_709_164_800_000));
    }
}
