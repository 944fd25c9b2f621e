//! Python's string semantics where the contract depends on them (`str.strip`, `str.isprintable`),
//! answered natively for ASCII; `None` means "ask Python" (non-ASCII text, whose answer depends on
//! the Unicode database of the interpreter the pipeline runs in).

use std::sync::LazyLock;

use pyo3::prelude::*;
use regex::Regex;

/// `str.isspace` for one character: Unicode White_Space plus the ASCII information separators.
pub fn py_isspace(c: char) -> bool {
    c.is_whitespace() || ('\x1c'..='\x1f').contains(&c)
}

/// `str.strip()` with no arguments.
pub fn py_strip(s: &str) -> &str {
    s.trim_matches(py_isspace)
}

/// The number of characters, as `len()` counts them (code points).
pub fn py_len(s: &str) -> usize {
    s.chars().count()
}

/// The first `n` characters (`s[:n]`).
pub fn py_prefix(s: &str, n: usize) -> &str {
    match s.char_indices().nth(n) {
        Some((at, _)) => &s[..at],
        None => s,
    }
}

/// `streams.domain.pii.is_blank` for ASCII: nothing visible, i.e. no character from `!` to `~`.
pub fn ascii_is_blank(s: &str) -> Option<bool> {
    s.is_ascii().then(|| !s.bytes().any(|b| (0x21..=0x7e).contains(&b)))
}

/// `streams.domain.pii.has_control` for ASCII: a C0 control or DEL.
pub fn ascii_has_control(s: &str) -> Option<bool> {
    s.is_ascii().then(|| s.bytes().any(|b| b < 0x20 || b == 0x7f))
}

/// `streams.domain.pii.is_junk` for ASCII: placeholder identifiers that must never link anyone.
pub fn ascii_is_junk(s: &str, blocklist: &std::collections::HashSet<String>) -> Option<bool> {
    if !s.is_ascii() {
        return None;
    }
    let v = py_strip(s).to_ascii_lowercase();
    let Some(first) = v.bytes().next() else {
        return Some(true);
    };
    if blocklist.contains(&v) {
        return Some(true);
    }
    let zeros =
        b"0-_.:".contains(&first) && v.chars().all(|c| matches!(c, '0' | '-' | '_' | '.' | ':') || py_isspace(c));
    // Not printable and blank: only spaces and controls (ASCII controls are all invisible).
    let invisible = v.bytes().any(|b| b < 0x20 || b == 0x7f) && !v.bytes().any(|b| (0x21..=0x7e).contains(&b));
    Some(zeros || invisible)
}

/// `_NO_PII.fullmatch` for ASCII: no '@' and at most six digits, so no phone or e-mail can hide in it.
pub fn ascii_has_no_pii(s: &str) -> Option<bool> {
    s.is_ascii().then(|| !s.contains('@') && s.bytes().filter(u8::is_ascii_digit).count() <= 6)
}

/// `streams.domain.pii._MAYBE_PII` (an '@', six decimal digits, or two digits one or two separators apart):
/// a necessary condition for any of its redactions. `\d` is Unicode's Nd here as in Python's `re`; a digit
/// of a Unicode release newer than Python's only makes the answer "maybe", never "no" where Python says yes.
static MAYBE_PII: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"@|\d{6}|\d[ ().\-\x{a0}\x{2010}-\x{2015}\x{2212}\x{3000}\x{ff08}\x{ff09}\x{ff0d}\x{ff0e}]{1,2}\d")
        .expect("pattern")
});

/// Whether text may hold a phone number or e-mail address `streams.domain.pii` would redact: false means
/// `redact_text` (and `redact_label`) give it back unchanged. Text that is no UTF-8 (a lone surrogate from
/// a JSON escape) is "maybe": Python decides.
#[pyfunction]
pub fn may_hold_pii(text: &Bound<'_, pyo3::types::PyString>) -> bool {
    match text.to_str() {
        Ok(s) => ascii_may_hold_pii(s).unwrap_or_else(|| MAYBE_PII.is_match(s)),
        Err(_) => true,
    }
}

/// Whether ASCII text may hold a phone number or e-mail address by `streams.domain.pii`'s rules: an '@',
/// a backslash (a JSON escape may unglue a run), or seven digits each at most two separators (` ().-`)
/// from the next, starting at a digit not glued to a letter, digit, `_` or `-` before it (every phone
/// pattern there needs one: `_REDACT_PHONE`'s lookbehind, `_PHONE_SHAPE` from the value's start).
/// `Some(false)` answers `pii_in_id`, `redact_label` and `redact_text` without asking them.
pub fn ascii_may_hold_pii(s: &str) -> Option<bool> {
    if !s.is_ascii() {
        return None;
    }
    let b = s.as_bytes();
    if b.iter().any(|&c| c == b'@' || c == b'\\') {
        return Some(true);
    }
    let glue = |c: u8| c.is_ascii_alphanumeric() || c == b'_' || c == b'-';
    let sep = |c: u8| matches!(c, b' ' | b'(' | b')' | b'.' | b'-');
    for start in 0..b.len() {
        if !b[start].is_ascii_digit() || (start > 0 && glue(b[start - 1])) {
            continue;
        }
        let (mut digits, mut gap) = (0, 0);
        for &c in &b[start..] {
            if c.is_ascii_digit() {
                digits += 1;
                gap = 0;
                if digits >= 7 {
                    return Some(true);
                }
            } else if gap < 2 && sep(c) {
                gap += 1;
            } else {
                break;
            }
        }
    }
    Some(false)
}

/// `_MAYBE_PII.search` for ASCII: an '@', six digits in a row, or two digits one or two separators apart.
pub fn ascii_maybe_pii(s: &str) -> Option<bool> {
    if !s.is_ascii() {
        return None;
    }
    let b = s.as_bytes();
    if b.contains(&b'@') {
        return Some(true);
    }
    let sep = |c: u8| matches!(c, b' ' | b'(' | b')' | b'.' | b'-');
    let mut run = 0;
    for (i, &c) in b.iter().enumerate() {
        if c.is_ascii_digit() {
            run += 1;
            if run >= 6 {
                return Some(true);
            }
            let after = &b[i + 1..];
            let apart = |k: usize| after.len() > k && after[..k].iter().all(|&x| sep(x)) && after[k].is_ascii_digit();
            if apart(1) || apart(2) {
                return Some(true);
            }
        } else {
            run = 0;
        }
    }
    Some(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn strip_is_pythons() {
        assert_eq!(py_strip("\x1c a \u{3000}"), "a");
        assert_eq!(py_strip("\u{200b}a"), "\u{200b}a"); // a format character is not whitespace
    }

    #[test]
    fn junk() {
        let block: HashSet<String> = ["null".to_string()].into();
        for v in ["", "  ", "NULL", "0", "000-000", "0:0", "\x00", " \t\x01"] {
            assert_eq!(ascii_is_junk(v, &block), Some(true), "{v:?}");
        }
        for v in ["a", "01", "x\x00", "-1"] {
            assert_eq!(ascii_is_junk(v, &block), Some(false), "{v:?}");
        }
        assert_eq!(ascii_is_junk("é", &block), None);
    }

    #[test]
    fn may_hold_pii() {
        for yes in [
            "13800138000",
            "tel 138-0013-8000",
            "(010) 1234 5678",
            "a@b",
            "+86 138 0013 8000",
            "x+13800138000",
            "2024-05-06",
            "a1 1380013800",
            "t\\n13800138000",
        ] {
            assert_eq!(ascii_may_hold_pii(yes), Some(true), "{yes}");
        }
        for no in [
            "sim-3a7d4334-1",
            "123456",
            "12 - 34567",
            "v1.2",
            "K-3a7d4334-1",
            "C0000046",
            "x1.2.3.4.5.6.7",
            "order-13800138000",
            "id_13800138000",
        ] {
            assert_eq!(ascii_may_hold_pii(no), Some(false), "{no}");
        }
        assert_eq!(ascii_may_hold_pii("１３８"), None);
    }

    #[test]
    fn maybe_pii() {
        assert_eq!(ascii_maybe_pii("v1.2"), Some(true)); // digit, one separator, digit
        assert_eq!(ascii_maybe_pii("abc12345"), Some(false));
        assert_eq!(ascii_maybe_pii("123456"), Some(true));
        assert_eq!(ascii_maybe_pii("1 -2"), Some(true));
        assert_eq!(ascii_maybe_pii("1 - 2"), Some(false));
        assert_eq!(ascii_maybe_pii("a@b"), Some(true));
    }

    #[test]
    fn blank_and_control() {
        assert_eq!(ascii_is_blank(" \t"), Some(true));
        assert_eq!(ascii_is_blank(" a"), Some(false));
        assert_eq!(ascii_has_control("a\x7f"), Some(true));
        assert_eq!(ascii_has_control("a b"), Some(false));
        assert_eq!(py_prefix("日本語", 2), "日本");
    }
}
