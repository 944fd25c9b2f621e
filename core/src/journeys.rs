//! Journeys: purchase, service and browse episodes, their status and idle timeouts (Contract 2).
//!
//! A customer's journeys are kept in insertion order, as the Python state's dict keeps them (rows and
//! retirements follow that order); each holds the 64-bit hashes of its event ids, sorted.

pub const JOURNEY_TYPES: [&str; 3] = ["purchase", "service", "browse"];
pub const CHANNELS: [&str; 12] =
    ["web", "app", "phone", "ivr", "chat", "wechat", "email", "sms", "store", "logistics", "survey", "social"];
const TERMINAL: [&str; 3] = ["delivered", "case_resolved", "order_cancelled"];

/// Journey type as an index into `JOURNEY_TYPES`.
pub type JType = u8;
pub const PURCHASE: JType = 0;
pub const SERVICE: JType = 1;
pub const BROWSE: JType = 2;

/// Status as written to ClickHouse; `Never` is "" (not written yet, or must be written again).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Never,
    Open,
    Completed,
    Abandoned,
}

impl Status {
    pub const NAMES: [&'static str; 4] = ["", "open", "completed", "abandoned"];

    pub fn name(self) -> &'static str {
        Self::NAMES[self as usize]
    }

    pub fn from_index(i: u8) -> Status {
        match i {
            1 => Status::Open,
            2 => Status::Completed,
            3 => Status::Abandoned,
            _ => Status::Never,
        }
    }
}

/// Idle timeouts by type, and how long closed journeys stay in state (their event ids deduplicate).
#[derive(Clone, Debug, PartialEq)]
pub struct JourneyPolicy {
    pub timeouts: [i64; 3],
    pub retention: i64,
}

impl JourneyPolicy {
    pub fn browse_gap(&self) -> i64 {
        self.timeouts[BROWSE as usize]
    }

    /// How far behind a customer's latest event a touchpoint may still change a journey of this type.
    pub fn horizon(&self, jtype: JType) -> i64 {
        self.timeouts[jtype as usize] + self.retention
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Journey {
    pub jid: String,
    pub jtype: JType,
    pub started: i64,
    pub last: i64,
    pub terminal: i64,
    pub channels: u32,
    pub dissatisfying: bool,
    pub events: Vec<u64>,
    pub emitted: Status,
}

impl Journey {
    pub fn new(jid: String, jtype: JType, t: i64) -> Self {
        Journey {
            jid,
            jtype,
            started: t,
            last: t,
            terminal: 0,
            channels: 0,
            dissatisfying: false,
            events: Vec::new(),
            emitted: Status::Never,
        }
    }

    pub fn status(&self, watermark: i64, policy: &JourneyPolicy) -> Status {
        if self.terminal != 0 {
            Status::Completed
        } else if self.last + policy.timeouts[self.jtype as usize] <= watermark {
            Status::Abandoned
        } else {
            Status::Open
        }
    }

    pub fn ended_at(&self, status: Status) -> Option<i64> {
        match status {
            Status::Completed => Some(self.terminal),
            Status::Abandoned => Some(self.last),
            _ => None,
        }
    }

    pub fn has(&self, ehash: u64) -> bool {
        self.events.binary_search(&ehash).is_ok()
    }

    pub fn add(&mut self, ehash: u64) {
        if let Err(at) = self.events.binary_search(&ehash) {
            self.events.insert(at, ehash);
        }
    }

    /// Join of two views of the same journey: the order of arrival does not matter.
    pub fn absorb(&mut self, other: &Journey) {
        self.started = self.started.min(other.started);
        self.last = self.last.max(other.last);
        if other.terminal != 0 && (self.terminal == 0 || other.terminal < self.terminal) {
            self.terminal = other.terminal;
        }
        self.channels |= other.channels;
        self.dissatisfying |= other.dissatisfying;
        for &e in &other.events {
            self.add(e);
        }
        self.emitted = Status::Never;
    }

    /// Whether this journey's event ids include every one of `other`'s (Python's `>=` on sets).
    pub fn covers(&self, other: &Journey) -> bool {
        other.events.iter().all(|e| self.has(*e))
    }
}

/// What a touchpoint says about its journey.
pub struct Touch<'a> {
    pub event_id: &'a str,
    pub event_type: &'a str,
    pub channel: &'a str,
    pub occurred_ms: i64,
    pub case_id: Option<&'a str>,
    pub contact_id: Option<&'a str>,
    pub order_id: Option<&'a str>,
    pub resolved: Option<bool>,
}

fn present(v: Option<&str>) -> Option<&str> {
    v.filter(|s| !s.is_empty())
}

/// `(type, journey id)` of an anchored journey, or None for browse touchpoints.
pub fn anchor(t: &Touch<'_>) -> Option<(JType, String)> {
    if let Some(case) = present(t.case_id) {
        Some((SERVICE, format!("service:case:{case}")))
    } else if let Some(contact) = present(t.contact_id) {
        Some((SERVICE, format!("service:contact:{contact}")))
    } else {
        present(t.order_id).map(|order| (PURCHASE, format!("purchase:{order}")))
    }
}

/// The journey type a touchpoint's horizon is judged by.
pub fn journey_type(t: &Touch<'_>) -> JType {
    if present(t.case_id).is_some() || present(t.contact_id).is_some() {
        SERVICE
    } else if present(t.order_id).is_some() {
        PURCHASE
    } else {
        BROWSE
    }
}

fn is_terminal(t: &Touch<'_>) -> bool {
    TERMINAL.contains(&t.event_type) || (t.event_type == "contact_ended" && t.resolved == Some(true))
}

pub fn channel_bit(channel: &str) -> u32 {
    CHANNELS.iter().position(|c| *c == channel).map_or(0, |i| 1 << i)
}

/// Channel names of a bit mask, in contract order.
pub fn channel_names(mask: u32) -> Vec<&'static str> {
    CHANNELS.iter().enumerate().filter(|(i, _)| mask >> i & 1 == 1).map(|(_, c)| *c).collect()
}

/// The `journey_id` a key's journey is stored under: `<anchor>@<customer_key>`.
pub fn row_id(key: &str, jid: &str) -> String {
    format!("{jid}@{key}")
}

fn position(journeys: &[Journey], jid: &str) -> Option<usize> {
    journeys.iter().position(|j| j.jid == jid)
}

/// Insert or replace by id, as a Python dict assignment does (a new id goes last).
fn put(journeys: &mut Vec<Journey>, journey: Journey) -> usize {
    match position(journeys, &journey.jid) {
        Some(at) => {
            journeys[at] = journey;
            at
        }
        None => {
            journeys.push(journey);
            journeys.len() - 1
        }
    }
}

/// The journey this touchpoint belongs to (created if new, as an index), and the browse journeys it retired.
///
/// A browse touchpoint joins every session it falls within the browse gap of; when it bridges two they
/// become one, the earliest surviving. A session is named after its earliest touchpoint (time, then
/// event id), so the split and the ids are the same whatever order the touchpoints arrive in.
pub fn assign(journeys: &mut Vec<Journey>, t: &Touch<'_>, policy: &JourneyPolicy) -> (usize, Vec<Journey>) {
    let at = t.occurred_ms;
    let mut retired = Vec::new();
    let index = if let Some((jtype, jid)) = anchor(t) {
        match position(journeys, &jid) {
            Some(i) => i,
            None => put(journeys, Journey::new(jid, jtype, at)),
        }
    } else {
        let gap = policy.browse_gap();
        let mut near: Vec<(i64, String)> = journeys
            .iter()
            .filter(|j| j.jtype == BROWSE && j.started - gap < at && at < j.last + gap)
            .map(|j| (j.started, j.jid.clone()))
            .collect();
        if near.is_empty() {
            put(journeys, Journey::new(format!("browse:{}", t.event_id), BROWSE, at))
        } else {
            near.sort();
            let keep = near[0].1.clone();
            for (_, other_id) in &near[1..] {
                if let Some(o) = position(journeys, other_id) {
                    let other = journeys.remove(o);
                    if let Some(k) = position(journeys, &keep) {
                        journeys[k].absorb(&other);
                    }
                    retired.push(other);
                }
            }
            let mut k = position(journeys, &keep).unwrap_or(0);
            let current = &journeys[k];
            let suffix = current.jid.strip_prefix("browse:").unwrap_or(&current.jid);
            if (at, t.event_id) < (current.started, suffix) {
                let mut renamed = Journey::new(format!("browse:{}", t.event_id), BROWSE, at);
                let old = journeys.remove(k);
                renamed.absorb(&old);
                retired.push(old);
                k = put(journeys, renamed);
            }
            k
        }
    };
    let journey = &mut journeys[index];
    journey.started = journey.started.min(at);
    journey.last = journey.last.max(at);
    journey.channels |= channel_bit(t.channel);
    if is_terminal(t) && (journey.terminal == 0 || at < journey.terminal) {
        journey.terminal = at;
    }
    journey.emitted = Status::Never;
    (index, retired)
}

/// Take over another key's journeys; overlapping browse sessions fuse. Returns the retired ones.
pub fn merge_journeys(mine: &mut Vec<Journey>, theirs: Vec<Journey>, policy: &JourneyPolicy) -> Vec<Journey> {
    for mut journey in theirs {
        match position(mine, &journey.jid) {
            None => {
                journey.emitted = Status::Never;
                mine.push(journey);
            }
            Some(i) => mine[i].absorb(&journey),
        }
    }
    let mut browse: Vec<(i64, String)> =
        mine.iter().filter(|j| j.jtype == BROWSE).map(|j| (j.started, j.jid.clone())).collect();
    browse.sort();
    let gap = policy.browse_gap();
    let mut retired = Vec::new();
    let mut current: Option<String> = None;
    for (started, jid) in browse {
        let fuse = current.as_ref().and_then(|c| position(mine, c)).filter(|&c| started - mine[c].last < gap);
        match fuse {
            Some(c) => {
                if let Some(o) = position(mine, &jid) {
                    let other = mine.remove(o);
                    let c = if o < c { c - 1 } else { c };
                    mine[c].absorb(&other);
                    retired.push(other);
                }
            }
            None => current = Some(jid),
        }
    }
    retired
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;

    fn policy() -> JourneyPolicy {
        JourneyPolicy { timeouts: [14 * 1440 * MIN, 7 * 1440 * MIN, 30 * MIN], retention: 1440 * MIN }
    }

    fn browse(event_id: &str, at: i64) -> Touch<'_> {
        Touch {
            event_id,
            event_type: "page_view",
            channel: "web",
            occurred_ms: at,
            case_id: None,
            contact_id: None,
            order_id: None,
            resolved: None,
        }
    }

    #[test]
    fn browse_sessions_split_by_the_gap_and_take_the_earliest_name() {
        let p = policy();
        let mut js = Vec::new();
        assign(&mut js, &browse("b", 10 * MIN), &p);
        assign(&mut js, &browse("c", 65 * MIN), &p);
        assert_eq!(js.iter().map(|j| j.jid.as_str()).collect::<Vec<_>>(), ["browse:b", "browse:c"]);
        // A touchpoint bridging both fuses them; an earlier one renames the session.
        let (i, retired) = assign(&mut js, &browse("a", 5 * MIN), &p);
        assert_eq!((js[i].jid.as_str(), retired.len()), ("browse:a", 1));
        let (i, retired) = assign(&mut js, &browse("z", 38 * MIN), &p);
        assert_eq!(retired.iter().map(|j| j.jid.as_str()).collect::<Vec<_>>(), ["browse:c"]);
        assert_eq!((js.len(), js[i].started, js[i].last), (1, 5 * MIN, 65 * MIN));
    }

    #[test]
    fn anchored_journeys_complete_on_terminal_events() {
        let p = policy();
        let mut js = Vec::new();
        let mut t = browse("e1", MIN);
        t.order_id = Some("O1");
        t.event_type = "delivered";
        let (i, _) = assign(&mut js, &t, &p);
        assert_eq!((js[i].jid.as_str(), js[i].jtype), ("purchase:O1", PURCHASE));
        assert_eq!(js[i].status(0, &p), Status::Completed);
        assert_eq!(js[i].ended_at(Status::Completed), Some(MIN));
        assert_eq!(channel_names(js[i].channels), ["web"]);
        assert_eq!(row_id("C1", &js[i].jid), "purchase:O1@C1");
    }

    #[test]
    fn merging_fuses_overlapping_sessions() {
        let p = policy();
        let mut mine = Vec::new();
        assign(&mut mine, &browse("a", 0), &p);
        let mut theirs = Vec::new();
        assign(&mut theirs, &browse("b", 10 * MIN), &p);
        let retired = merge_journeys(&mut mine, theirs, &p);
        assert_eq!(retired.len(), 1);
        assert_eq!((mine.len(), mine[0].jid.as_str(), mine[0].last), (1, "browse:a", 10 * MIN));
    }
}
