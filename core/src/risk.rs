//! Rolling experience counters, churn-risk levels, crossings into `high`, alert attribution and the
//! score (Contract 2). Times are milliseconds; the window is `(t - window, t]`.

/// "事不过三": three dissatisfying experiences in the window are high risk.
pub const HIGH_RISK_THRESHOLD: usize = 3;
pub const RISK_LEVELS: [&str; 4] = ["none", "low", "elevated", "high"];
const SCORE_SCALE: f64 = 10.0;

/// 0 none, 1 low, 2 elevated, 3 or more high.
pub fn churn_level(dissatisfied: usize) -> &'static str {
    RISK_LEVELS[dissatisfied.min(HIGH_RISK_THRESHOLD)]
}

/// Is `when` in the rolling window `(t - window, t]`?
pub fn in_window(when: i64, t: i64, window: i64) -> bool {
    t - window < when && when <= t
}

/// Index of the first element > `x` in sorted `v` (Python's bisect_right).
fn bisect_right(v: &[i64], x: i64) -> usize {
    v.partition_point(|&e| e <= x)
}

/// Index of the first element >= `x` in sorted `v` (Python's bisect_left).
fn bisect_left(v: &[i64], x: i64) -> usize {
    v.partition_point(|&e| e < x)
}

/// `(instant, count just before)` where the rolling count of first-negative times reaches three from
/// below, skipping instants whose window reaches back to `horizon` (a pruned strike may have counted).
pub fn crossings(sorted: &[i64], window: i64, horizon: i64) -> Vec<(i64, usize)> {
    let mut found = Vec::new();
    let mut previous = None;
    for &e in sorted {
        if previous == Some(e) {
            continue;
        }
        previous = Some(e);
        if horizon != 0 && e - window <= horizon {
            continue;
        }
        let at = bisect_right(sorted, e) - bisect_right(sorted, e - window);
        let before = bisect_left(sorted, e) - bisect_left(sorted, e - window);
        if at >= HIGH_RISK_THRESHOLD && HIGH_RISK_THRESHOLD > before {
            found.push((e, before));
        }
    }
    found
}

/// The first instant after `start` at which the count falls below high again (None: still high).
pub fn high_until(sorted: &[i64], start: i64, window: i64) -> Option<i64> {
    for &f in sorted {
        let drop = f + window;
        if drop <= start {
            continue;
        }
        if bisect_right(sorted, drop) - bisect_right(sorted, drop - window) < HIGH_RISK_THRESHOLD {
            return Some(drop);
        }
    }
    None
}

/// One high episode: its start, the count just before it, and its end (None: still high).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Episode {
    pub start: i64,
    pub before: usize,
    pub end: Option<i64>,
}

/// The high episodes that can be judged, by start.
pub fn episodes(first_negatives: &[i64], window: i64, horizon: i64) -> Vec<Episode> {
    let mut times = first_negatives.to_vec();
    times.sort_unstable();
    crossings(&times, window, horizon)
        .into_iter()
        .map(|(start, before)| Episode { start, before, end: high_until(&times, start, window) })
        .collect()
}

/// Which episode each alert instant stands for: `(alert, index into spans)`, by alert.
///
/// An alert inside an episode stands for it (the first one there, if history put two). An alert now
/// between episodes was raised for a crossing later facts moved earlier: it stands for the episode
/// just before it, unless that one has an alert of its own.
pub fn attribute_alerts(alerts: &[i64], spans: &[Episode]) -> Vec<(i64, usize)> {
    let starts: Vec<i64> = spans.iter().map(|s| s.start).collect();
    let mut sorted = alerts.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut owner = Vec::new();
    let mut taken = vec![false; spans.len()];
    let mut pending = Vec::new();
    for a in sorted {
        let Some(i) = bisect_right(&starts, a).checked_sub(1) else { continue };
        match spans[i].end {
            Some(end) if a >= end => pending.push((a, i)),
            _ => {
                if !taken[i] {
                    owner.push((a, i));
                    taken[i] = true;
                }
            }
        }
    }
    for (a, i) in pending {
        if !taken[i] {
            owner.push((a, i));
            taken[i] = true;
        }
    }
    owner.sort_unstable();
    owner
}

/// Python's `round(x, 2)`: correctly rounded, ties to even, on the double's exact value.
pub fn round2(x: f64) -> f64 {
    // Python rounds the exact binary value; formatting with 2 decimals does the same (ties are exact).
    format!("{x:.2}").parse().unwrap_or(x)
}

/// Score in [-100, 100] from `(time, weight)` pairs: `100 * tanh(S / 10)`, S the sum of weight halved
/// every half-life, over the signals whose time lies in the window.
pub fn experience_score(contributions: &[(i64, f64)], t: i64, window: i64, half_life: f64) -> f64 {
    let mut total = 0.0;
    for &(when, weight) in contributions {
        if t - window < when && when <= t {
            total += weight * 0.5f64.powf((t - when) as f64 / half_life);
        }
    }
    round2(100.0 * (total / SCORE_SCALE).tanh())
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400_000;

    #[test]
    fn three_in_the_window_cross() {
        let w = 90 * DAY;
        assert_eq!(crossings(&[DAY, 2 * DAY, 3 * DAY], w, 0), vec![(3 * DAY, 2)]);
        assert_eq!(crossings(&[DAY, 2 * DAY, 200 * DAY], w, 0), vec![]);
        assert_eq!(crossings(&[DAY, DAY, DAY], w, 0), vec![(DAY, 0)]);
        // A window reaching back to a pruned strike is not judged.
        assert_eq!(crossings(&[DAY, 2 * DAY, 3 * DAY], w, 2 * DAY), vec![]);
        assert_eq!(
            episodes(&[3 * DAY, DAY, 2 * DAY], w, 0),
            vec![Episode { start: 3 * DAY, before: 2, end: Some(91 * DAY) }]
        );
    }

    #[test]
    fn alerts_stand_for_one_episode_each() {
        let spans = [Episode { start: 10, before: 2, end: Some(20) }, Episode { start: 30, before: 2, end: None }];
        assert_eq!(attribute_alerts(&[12, 15, 31], &spans), vec![(12, 0), (31, 1)]);
        // An alert between episodes stands for the one before it when that has none.
        assert_eq!(attribute_alerts(&[25, 31], &spans), vec![(25, 0), (31, 1)]);
        assert_eq!(attribute_alerts(&[5], &spans), vec![]);
    }

    #[test]
    fn score_and_levels() {
        assert_eq!(churn_level(0), "none");
        assert_eq!(churn_level(7), "high");
        assert_eq!(experience_score(&[], 0, 10, 1.0), 0.0);
        let s = experience_score(&[(100, -10.0)], 100, 1000, 30.0);
        assert_eq!(s, round2(100.0 * (-1.0f64).tanh()));
        assert_eq!(round2(0.125), 0.12);
        assert_eq!(round2(-76.15941559557649), -76.16);
    }
}
