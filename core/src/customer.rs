//! One customer's state: experiences, journeys, orders, recent contacts, alerts already raised.
//!
//! Every part is a join-semilattice (sets, minimum first times, maximum latest time), so applying the
//! same touchpoints in any order, twice, or split across keys that later merge, ends in the same
//! state. Collections keep insertion order, as the Python state's dicts do: rows, sums and the score
//! follow it.

use blake2::digest::{Update, VariableOutput};
use blake2::Blake2bVar;

use crate::journeys::{self, Journey, JourneyPolicy, Status, Touch};
use crate::risk;
use crate::signals::{self, Classifier};

pub const DAY_MS: i64 = 86_400_000;

/// Stable 64-bit hash of an event id: BLAKE2b with an 8-byte digest, read little-endian.
pub fn event_hash(event_id: &str) -> u64 {
    let mut out = [0u8; 8];
    if let Ok(mut hasher) = Blake2bVar::new(8) {
        hasher.update(event_id.as_bytes());
        // The output buffer is exactly the digest size: this cannot fail.
        let _ = hasher.finalize_variable(&mut out);
    }
    u64::from_le_bytes(out)
}

/// The rule parameters of Contract 2, in milliseconds.
#[derive(Clone, Debug)]
pub struct Policy {
    pub classifier: Classifier,
    pub journeys: JourneyPolicy,
    pub window: i64,
    pub lateness: i64,
    pub half_life: f64,
    /// Wall-clock ms an anonymous key's alert waits for the key to be linked (0: none).
    pub anonymous_hold: i64,
    /// How long after an alert its outcome is watched (CXJ_RECOVERY_DAYS).
    pub recovery: i64,
}

/// One episode: when it first went wrong / right, which signals it carries.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Experience {
    pub first_neg: i64,
    pub first_pos: i64,
    pub mask: u64,
    pub last: i64,
}

impl Experience {
    pub fn add(&mut self, bit: u32, negative: bool, when: i64) {
        self.mask |= 1 << bit;
        if negative {
            if self.first_neg == 0 || when < self.first_neg {
                self.first_neg = when;
            }
        } else if self.first_pos == 0 || when < self.first_pos {
            self.first_pos = when;
        }
        self.last = self.last.max(when);
    }

    pub fn absorb(&mut self, other: &Experience) {
        if other.first_neg != 0 && (self.first_neg == 0 || other.first_neg < self.first_neg) {
            self.first_neg = other.first_neg;
        }
        if other.first_pos != 0 && (self.first_pos == 0 || other.first_pos < self.first_pos) {
            self.first_pos = other.first_pos;
        }
        self.mask |= other.mask;
        self.last = self.last.max(other.last);
    }
}

/// A recent contact_started about a case or order, kept to spot repeat contacts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Contact {
    pub anchor: String,
    pub at: i64,
    pub reference: String, // contact_id, else event_id
    pub experience_key: String,
    pub event_id: String,
    pub channel: String,
    pub journey_id: String,
    pub flagged: bool,
}

/// A signal found later for an earlier touchpoint (a repeat contact seen out of order).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetroSignal {
    pub event_id: String,
    pub experience_key: String,
    pub signal: usize,
    pub channel: String,
    pub occurred_ms: i64,
}

/// What applying one touchpoint did, for the rows the stage writes.
#[derive(Debug, PartialEq)]
pub struct Applied {
    pub experience_key: String,
    pub journey_id: String,
    pub signals: Vec<usize>,
    pub retro: Vec<RetroSignal>,
    pub retired: Vec<Journey>,
    /// The journey type when this touchpoint opened a new journey.
    pub opened: Option<journeys::JType>,
}

/// The customer_experience figures at the customer's latest event time.
#[derive(Clone, Debug, PartialEq)]
pub struct Counters {
    pub dissatisfied: usize,
    pub satisfied: usize,
    pub score: f64,
    pub level: &'static str,
}

/// One crossing into high risk to alert: instant, count just before, experience keys in the window,
/// and the negative signals they carry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Crossing {
    pub instant: i64,
    pub before: usize,
    pub keys: Vec<String>,
    pub mask: u64,
}

/// An alert whose outcome is watched for `Policy::recovery` after it (issue 17): its id, its instant (the
/// start of the episode it stands for, moved with it), and the outcome last written for it
/// (`Outcome::code`, 0: none yet, and its time).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Watch {
    pub alert_id: String,
    pub at: i64,
    pub reported: u8,
    pub reported_at: i64,
}

/// What became of a customer after an alert, in event time.
pub const OUTCOMES: [&str; 4] = ["pending", "recovered", "relapsed", "lost"];
pub const PENDING: usize = 0;
pub const RECOVERED: usize = 1;
pub const RELAPSED: usize = 2;
pub const LOST: usize = 3;

/// An alert's outcome: which (index into OUTCOMES), whether it is decided, and the event time behind it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outcome {
    pub outcome: usize,
    pub decided: bool,
    /// The first new dissatisfying experience, the first repair, the window's end when lost; 0 when pending.
    pub at: i64,
}

impl Outcome {
    /// 1 + outcome * 2 + decided: what a watch records as reported.
    pub fn code(&self) -> u8 {
        1 + (self.outcome as u8) * 2 + u8::from(self.decided)
    }

    /// Does a reported code stand for a decided outcome?
    pub fn is_decided(code: u8) -> bool {
        code != 0 && (code - 1) % 2 == 1
    }
}

/// The touchpoint fields the state reads.
pub struct Fact<'a> {
    pub touch: Touch<'a>,
    pub amount: Option<f64>,
}

/// Everything the pipeline keeps about one customer key.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CustomerState {
    pub key: String,
    pub version: i64,
    pub latest: i64,
    /// The latest first-negative time of a pruned experience (0: none).
    pub horizon: i64,
    pub exps: Vec<(String, Experience)>,
    pub journeys: Vec<Journey>,
    /// order_id -> (time, amount) of its latest order_placed.
    pub orders: Vec<(String, (i64, f64))>,
    pub contacts: Vec<Contact>,
    pub alerted: Vec<i64>,
    pub aliases: Vec<String>,
    /// Episodes of an anonymous key waiting for identity, since `held_at` (wall ms).
    pub held: Vec<i64>,
    pub held_at: i64,
    /// Alerts whose outcome is still watched, by alert time.
    pub watches: Vec<Watch>,
}

fn exp_index(exps: &[(String, Experience)], key: &str) -> Option<usize> {
    exps.iter().position(|(k, _)| k == key)
}

fn exp_entry<'a>(exps: &'a mut Vec<(String, Experience)>, key: &str, last: i64) -> &'a mut Experience {
    let at = match exp_index(exps, key) {
        Some(i) => i,
        None => {
            exps.push((key.to_string(), Experience { last, ..Experience::default() }));
            exps.len() - 1
        }
    };
    &mut exps[at].1
}

/// Python's `max` of two `(time, amount)` tuples.
fn later(a: (i64, f64), b: (i64, f64)) -> (i64, f64) {
    if (b.0, b.1) > (a.0, a.1) {
        b
    } else {
        a
    }
}

fn sorted_unique<T: Ord + Clone>(items: impl IntoIterator<Item = T>) -> Vec<T> {
    let mut v: Vec<T> = items.into_iter().collect();
    v.sort();
    v.dedup();
    v
}

impl CustomerState {
    pub fn new(key: &str) -> Self {
        CustomerState { key: key.to_string(), ..CustomerState::default() }
    }

    pub fn seen(&self, ehash: u64) -> bool {
        self.journeys.iter().any(|j| j.has(ehash))
    }

    /// Apply one touchpoint with the stateless signals it fires; None when its event id was already applied.
    pub fn apply(&mut self, fact: &Fact<'_>, hits: Vec<usize>, ehash: u64, policy: &Policy) -> Option<Applied> {
        if self.seen(ehash) {
            return None;
        }
        let rec = &fact.touch;
        let t = rec.occurred_ms;
        self.latest = self.latest.max(t);
        let ekey = signals::experience_key(rec.case_id, rec.contact_id, rec.order_id, rec.event_id);
        let classifier = &policy.classifier;
        {
            let exp = exp_entry(&mut self.exps, &ekey, t);
            for &s in &hits {
                let signal = &classifier.signals[s];
                exp.add(signal.bit, signal.polarity < 0, t);
            }
            exp.last = exp.last.max(t);
        }
        if rec.event_type == "order_placed" {
            if let (Some(order), Some(amount)) = (rec.order_id.filter(|o| !o.is_empty()), fact.amount) {
                let placed = (t, amount);
                match self.orders.iter_mut().find(|(o, _)| o == order) {
                    Some((_, current)) => *current = later(placed, *current),
                    None => self.orders.push((order.to_string(), placed)),
                }
            }
        }
        let mut journey_id = String::new();
        let mut opened = None;
        let mut retired = Vec::new();
        let mut journey = None;
        if t >= self.latest - policy.journeys.horizon(journeys::journey_type(rec)) {
            let (index, gone) = journeys::assign(&mut self.journeys, rec, &policy.journeys);
            retired = gone;
            let j = &mut self.journeys[index];
            if j.events.is_empty() {
                opened = Some(j.jtype);
            }
            j.add(ehash);
            journey_id = j.jid.clone();
            journey = Some(index);
        }
        let mut hits = hits;
        let mut retro = Vec::new();
        if let Some(rc) = &classifier.repeat_contact {
            if rec.event_type == rc.event_type {
                let anchor = match (rec.case_id.filter(|c| !c.is_empty()), rec.order_id.filter(|o| !o.is_empty())) {
                    (Some(case), _) => format!("case:{case}"),
                    (None, Some(order)) => format!("order:{order}"),
                    _ => String::new(),
                };
                if !anchor.is_empty() {
                    self.contacts.push(Contact {
                        anchor: anchor.clone(),
                        at: t,
                        reference: rec.contact_id.filter(|c| !c.is_empty()).unwrap_or(rec.event_id).to_string(),
                        experience_key: ekey.clone(),
                        event_id: rec.event_id.to_string(),
                        channel: rec.channel.to_string(),
                        journey_id: journey_id.clone(),
                        flagged: false,
                    });
                    for found in self.flag_repeats(&anchor, policy) {
                        if found.event_id == rec.event_id {
                            hits.push(rc.signal);
                        } else {
                            retro.push(found);
                        }
                    }
                }
            }
        }
        if let Some(index) = journey {
            if hits.iter().any(|&s| classifier.signals[s].polarity < 0) {
                self.journeys[index].dissatisfying = true;
            }
        }
        Some(Applied { experience_key: ekey, journey_id, signals: hits, retro, retired, opened })
    }

    /// Mark contacts about `anchor` that had another contact in the days before them.
    fn flag_repeats(&mut self, anchor: &str, policy: &Policy) -> Vec<RetroSignal> {
        let Some(rc) = &policy.classifier.repeat_contact else { return Vec::new() };
        let within = rc.within_days * DAY_MS;
        let group: Vec<usize> = (0..self.contacts.len()).filter(|&i| self.contacts[i].anchor == anchor).collect();
        let signal = &policy.classifier.signals[rc.signal];
        let mut flagged = Vec::new();
        for &i in &group {
            let c = &self.contacts[i];
            if c.flagged {
                continue;
            }
            let repeat = group.iter().any(|&o| {
                let o = &self.contacts[o];
                o.reference != c.reference && c.at - within <= o.at && o.at < c.at
            });
            if !repeat {
                continue;
            }
            self.contacts[i].flagged = true;
            let c = self.contacts[i].clone();
            exp_entry(&mut self.exps, &c.experience_key, c.at).add(signal.bit, true, c.at);
            if let Some(j) = self.journeys.iter_mut().find(|j| j.jid == c.journey_id) {
                j.dissatisfying = true;
                j.emitted = Status::Never;
            }
            flagged.push(RetroSignal {
                event_id: c.event_id,
                experience_key: c.experience_key,
                signal: rc.signal,
                channel: c.channel,
                occurred_ms: c.at,
            });
        }
        flagged
    }

    /// Take over everything known under another key (an anonymous key linked to us).
    pub fn absorb(&mut self, other: CustomerState, policy: &Policy) -> (Vec<RetroSignal>, Vec<Journey>) {
        self.latest = self.latest.max(other.latest);
        self.horizon = self.horizon.max(other.horizon);
        self.version = self.version.max(other.version);
        for (key, exp) in &other.exps {
            match exp_index(&self.exps, key) {
                None => self.exps.push((key.clone(), *exp)),
                Some(i) => self.exps[i].1.absorb(exp),
            }
        }
        let retired = journeys::merge_journeys(&mut self.journeys, other.journeys, &policy.journeys);
        for (order, placed) in other.orders {
            match self.orders.iter_mut().find(|(o, _)| *o == order) {
                Some((_, current)) => *current = later(placed, *current),
                None => self.orders.push((order, placed)),
            }
        }
        let known: Vec<(String, i64, String)> =
            self.contacts.iter().map(|c| (c.anchor.clone(), c.at, c.reference.clone())).collect();
        let mut anchors = Vec::new();
        for c in other.contacts {
            if !known.iter().any(|(a, at, r)| *a == c.anchor && *at == c.at && *r == c.reference) {
                anchors.push(c.anchor.clone());
                self.contacts.push(c);
            }
        }
        let mut retro = Vec::new();
        if policy.classifier.repeat_contact.is_some() {
            for anchor in sorted_unique(anchors) {
                retro.extend(self.flag_repeats(&anchor, policy));
            }
        }
        self.alerted = sorted_unique(self.alerted.iter().chain(&other.alerted).copied());
        // Rebuilt by new_crossings, which always follows; until then it keeps both keys' held strikes.
        self.held = sorted_unique(self.held.iter().chain(&other.held).copied());
        self.held_at = [self.held_at, other.held_at].into_iter().filter(|&t| t != 0).min().unwrap_or(0);
        // The other key's alerts are watched here now; their outcomes are written again, under this key
        // (`reported_at` -1 matches no outcome; `reported` stays, so a decision is not counted twice).
        for w in other.watches {
            match self.watches.iter_mut().find(|mine| mine.alert_id == w.alert_id) {
                Some(mine) => mine.reported_at = -1,
                None => self.watches.push(Watch { reported_at: -1, ..w }),
            }
        }
        let mut aliases: Vec<String> = self.aliases.drain(..).chain(other.aliases).collect();
        aliases.push(other.key);
        self.aliases = sorted_unique(aliases.into_iter().filter(|a| *a != self.key));
        (retro, retired)
    }

    pub fn counters(&self, policy: &Policy) -> Counters {
        let (t, window) = (self.latest, policy.window);
        let (mut dissatisfied, mut satisfied) = (0, 0);
        let mut contributions = Vec::new();
        let signals = &policy.classifier.signals;
        for (_, exp) in &self.exps {
            if exp.first_neg != 0 {
                if risk::in_window(exp.first_neg, t, window) {
                    dissatisfied += 1;
                }
            } else if exp.first_pos != 0 && risk::in_window(exp.first_pos, t, window) {
                satisfied += 1;
            }
            let mut mask = exp.mask;
            while mask != 0 {
                let bit = mask.trailing_zeros() as usize;
                if let Some(signal) = signals.get(bit) {
                    let when = if signal.polarity < 0 { exp.first_neg } else { exp.first_pos };
                    contributions.push((when, signal.weight));
                }
                mask &= mask - 1;
            }
        }
        let score = risk::experience_score(&contributions, t, window, policy.half_life);
        Counters { dissatisfied, satisfied, score, level: risk::churn_level(dissatisfied) }
    }

    pub fn lifetime_value(&self) -> f64 {
        risk::round2(self.orders.iter().fold(0.0, |sum, (_, (_, amount))| sum + amount))
    }

    /// The outcome of the alert at `at` once event time `now` is reached, from what the state keeps (so the same
    /// touchpoints in any order, twice, or under keys that merge give the same outcome): `relapsed` when an
    /// experience first went wrong in (at, at + recovery], decided; else `recovered` when one first went right
    /// there (a compensation, a good score), decided once `now` is past the window; else, past it, `lost` when
    /// the state holds no touchpoint in the window (an experience's first negative, first positive or latest
    /// time, a journey's first or latest), `pending` (decided) when it does; `pending` before that.
    pub fn outcome(&self, at: i64, recovery: i64, now: i64) -> Outcome {
        let end = at + recovery;
        let inside = |t: i64| t != 0 && at < t && t <= end;
        let first = |times: &mut dyn Iterator<Item = i64>| times.filter(|&t| inside(t)).min();
        if let Some(t) = first(&mut self.exps.iter().map(|(_, e)| e.first_neg)) {
            return Outcome { outcome: RELAPSED, decided: true, at: t };
        }
        let passed = now > end;
        if let Some(t) = first(&mut self.exps.iter().map(|(_, e)| e.first_pos)) {
            return Outcome { outcome: RECOVERED, decided: passed, at: t };
        }
        if !passed {
            return Outcome { outcome: PENDING, decided: false, at: 0 };
        }
        let seen = self.exps.iter().any(|(_, e)| inside(e.first_pos) || inside(e.last))
            || self.journeys.iter().any(|j| inside(j.started) || inside(j.last));
        if seen {
            Outcome { outcome: PENDING, decided: true, at: 0 }
        } else {
            Outcome { outcome: LOST, decided: true, at: end }
        }
    }

    /// Episodes into high risk to alert now, recorded as alerted (with `hold`, an anonymous key's
    /// episodes not alerted yet wait in `held` instead).
    pub fn new_crossings(&mut self, policy: &Policy, hold: bool) -> Vec<Crossing> {
        let window = policy.window;
        let negatives: Vec<&(String, Experience)> = self.exps.iter().filter(|(_, e)| e.first_neg != 0).collect();
        let times: Vec<i64> = negatives.iter().map(|(_, e)| e.first_neg).collect();
        let spans = risk::episodes(&times, window, self.horizon);
        let owner = risk::attribute_alerts(&self.alerted, &spans);
        let mut covered = vec![false; spans.len()];
        for &(a, i) in &owner {
            covered[i] = true;
            // Later facts moved the episode's start: its alert's outcome is judged from the new start.
            let start = spans[i].start;
            for w in self.watches.iter_mut().filter(|w| w.at == a && a != start) {
                w.at = start;
                w.reported_at = -1; // written again, with its new start
            }
        }
        let mut record: Vec<i64> =
            self.alerted.iter().copied().filter(|a| !owner.iter().any(|(o, _)| o == a)).collect();
        let mut found = Vec::new();
        let mut held = Vec::new();
        for (i, span) in spans.iter().enumerate() {
            if covered[i] {
                record.push(span.start);
            } else if hold {
                held.push(span.start);
            } else {
                record.push(span.start);
                let mut keys: Vec<String> = negatives
                    .iter()
                    .filter(|(_, e)| risk::in_window(e.first_neg, span.start, window))
                    .map(|(k, _)| k.clone())
                    .collect();
                keys.sort();
                let mask = negatives
                    .iter()
                    .filter(|(_, e)| risk::in_window(e.first_neg, span.start, window))
                    .fold(0, |m, (_, e)| m | (e.mask & policy.classifier.negative_mask));
                found.push(Crossing { instant: span.start, before: span.before, keys, mask });
            }
        }
        self.alerted = sorted_unique(record);
        if held.is_empty() {
            self.held_at = 0;
        }
        self.held = held;
        found
    }

    /// Drop what lies beyond the window plus allowed lateness; returns the journeys dropped.
    pub fn prune(&mut self, policy: &Policy, watermark: i64) -> Vec<Journey> {
        let cut = self.latest - policy.window - policy.lateness;
        // A held crossing waits (wall clock) for a link: every strike its window reaches stays.
        let keep = self.held.iter().min().map(|h| h - policy.window);
        if self.exps.iter().any(|(_, e)| e.last < cut) {
            let mut horizon = self.horizon;
            self.exps.retain(|(_, e)| {
                let kept = e.last >= cut || keep.is_some_and(|k| e.first_neg != 0 && e.first_neg >= k);
                if !kept && e.first_neg > horizon {
                    horizon = e.first_neg;
                }
                kept
            });
            self.horizon = horizon;
        }
        if self.horizon != 0 && !self.alerted.is_empty() {
            let (window, horizon) = (policy.window, self.horizon);
            self.alerted.retain(|a| a - window > horizon);
        }
        if !self.watches.is_empty() {
            // Past its window and the allowed lateness, a decided outcome no longer changes.
            let cut = self.latest - policy.recovery - policy.lateness;
            self.watches.retain(|w| w.at >= cut || !Outcome::is_decided(w.reported));
        }
        if let Some(rc) = &policy.classifier.repeat_contact {
            if !self.contacts.is_empty() {
                let ccut = self.latest - rc.within_days * DAY_MS - policy.lateness;
                self.contacts.retain(|c| c.at >= ccut);
            }
        }
        let mut dropped = Vec::new();
        let mut i = 0;
        while i < self.journeys.len() {
            let j = &self.journeys[i];
            if j.last < self.latest - policy.journeys.horizon(j.jtype)
                && j.status(watermark, &policy.journeys) != Status::Open
            {
                dropped.push(self.journeys.remove(i));
            } else {
                i += 1;
            }
        }
        dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_hash_is_blake2b_8_little_endian() {
        // int.from_bytes(hashlib.blake2b(event_id.encode(), digest_size=8).digest(), "little"), from Python.
        assert_eq!(event_hash(""), 13020603013274838756);
        assert_eq!(event_hash("e1"), 292540415853092123);
        assert_eq!(event_hash("sim-3a7d4334-1"), 15625056241551780042);
    }

    #[test]
    fn experiences_join() {
        let mut a = Experience { first_neg: 5, first_pos: 0, mask: 1, last: 5 };
        a.absorb(&Experience { first_neg: 3, first_pos: 9, mask: 2, last: 9 });
        assert_eq!(a, Experience { first_neg: 3, first_pos: 9, mask: 3, last: 9 });
        let mut e = Experience::default();
        e.add(1, false, 7);
        e.add(0, true, 9);
        e.add(0, true, 8);
        assert_eq!(e, Experience { first_neg: 8, first_pos: 7, mask: 3, last: 9 });
    }

    #[test]
    fn outcomes_follow_the_window() {
        let (at, r) = (100, 50);
        let exp = |first_neg, first_pos, last| Experience { first_neg, first_pos, mask: 1, last };
        let mut s = CustomerState::new("C1");
        s.exps.push(("case:a".into(), exp(100, 0, 100)));
        let o = |s: &CustomerState, now| s.outcome(at, r, now);
        assert_eq!(o(&s, 120), Outcome { outcome: PENDING, decided: false, at: 0 });
        assert_eq!(o(&s, 150), Outcome { outcome: PENDING, decided: false, at: 0 }); // the window's last instant
        assert_eq!(o(&s, 151), Outcome { outcome: LOST, decided: true, at: 150 });
        s.exps.push(("case:b".into(), exp(0, 130, 130)));
        assert_eq!(o(&s, 140), Outcome { outcome: RECOVERED, decided: false, at: 130 });
        assert_eq!(o(&s, 151), Outcome { outcome: RECOVERED, decided: true, at: 130 });
        s.exps.push(("case:c".into(), exp(145, 0, 145)));
        assert_eq!(o(&s, 146), Outcome { outcome: RELAPSED, decided: true, at: 145 });
        let mut quiet = CustomerState::new("C2");
        quiet.exps.push(("event:x".into(), exp(0, 0, 120)));
        assert_eq!(o(&quiet, 200), Outcome { outcome: PENDING, decided: true, at: 0 });
        for code in 1..=8u8 {
            assert_eq!(Outcome::is_decided(code), code % 2 == 0);
        }
        assert!(!Outcome::is_decided(0));
    }
}
