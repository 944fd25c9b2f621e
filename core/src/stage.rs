//! Stage 2 for one stitch partition: apply a batch of items to customer state and collect every output
//! (rows by table, re-routed items, alerts, changed changelog values, counters), one call per batch.
//!
//! The customers' states live serialized in a table of the core's own (`entries`: the changelog's bytes,
//! ~200 bytes a customer, in one allocation with the key); a touched state is decoded once per
//! batch and encoded once at its end. Alerts are made by a Python callable (the pydantic `ChurnAlert`).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

use indexmap::IndexMap;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyTuple};

use crate::codec::{self, Entry};
use crate::customer::{event_hash, Applied, CustomerState, Fact, Outcome, Policy, RetroSignal, Watch, OUTCOMES};
use crate::entries::Entries;
use crate::journeys::{self, Journey, JourneyPolicy, Status, Touch, JOURNEY_TYPES};
use crate::record::{self, ItemData, Record, Scalar};
use crate::rows::{Cell, RowBuf, Rows};
use crate::signals::{Classifier, Metric};

/// The Python classes and table names rows and items are made of.
struct Kinds {
    tuple_new: Py<PyAny>,
    record: Py<PyAny>,
    item: Py<PyAny>,
    touchpoint_row: Py<PyAny>,
    signal_row: Py<PyAny>,
    customer_row: Py<PyAny>,
    journey_row: Py<PyAny>,
    override_row: Py<PyAny>,
    erasure_row: Py<PyAny>,
    outcome_row: Py<PyAny>,
    /// Table members: touchpoints, experience_signals, customer_experience, journeys, identity_overrides, erasures,
    /// alert_outcomes.
    tables: [Py<PyAny>; 7],
    make_alert: Py<PyAny>,
}

const T_TOUCHPOINTS: usize = 0;
const T_SIGNALS: usize = 1;
const T_CUSTOMERS: usize = 2;
const T_JOURNEYS: usize = 3;
const T_OVERRIDES: usize = 4;
const T_ERASURES: usize = 5;
const T_OUTCOMES: usize = 6;

/// A `customer_experience` row's fields, in column order.
type CustomerFields<'a> = (&'a str, i64, i64, f64, &'a str, i64, i64, f64, i64, i64, &'a str, i64);

/// What one call produced, handed to Python as plain values.
#[derive(Default)]
struct Out {
    rows: [RowBuf; 7],
    forward: Vec<Py<PyAny>>,
    alerts: Vec<Py<PyAny>>,
    changed: IndexMap<String, Option<Vec<u8>>>,
    duplicates: i64,
    signals: IndexMap<String, i64>,
    opened: IndexMap<&'static str, i64>,
    closed: IndexMap<(&'static str, &'static str), i64>,
    seconds: Vec<(&'static str, f64)>,
    merges: i64,
    erased: i64,
    /// When each touchpoint item was received (ms), for the event-to-sink lag.
    received: Vec<i64>,
    /// Alert outcomes decided (or decided otherwise than before), by outcome.
    decided: IndexMap<&'static str, i64>,
}

/// The metrics a signal rule reads (fields 14..24 of a record), as the Python stage typed them.
fn metrics_of(rec: &Record) -> [Option<Metric>; 10] {
    let mut out: [Option<Metric>; 10] = Default::default();
    for (slot, m) in out.iter_mut().zip(&rec.metrics) {
        *slot = match m {
            Scalar::Null => None,
            Scalar::Bool(b) => Some(Metric::Bool(*b)),
            Scalar::Int(i) => Some(Metric::Int(*i)),
            // An int beyond i64 is read as a float, as `float(value)` would.
            Scalar::UInt(u) => Some(Metric::Float(*u as f64)),
            Scalar::Float(f) => Some(Metric::Float(*f)),
            Scalar::Str(s) => Some(Metric::Str(s.clone())),
        };
    }
    out
}

fn fact<'a>(rec: &'a Record, metrics: &[Option<Metric>; 10]) -> Fact<'a> {
    let resolved = match &metrics[3] {
        Some(Metric::Bool(b)) => Some(*b),
        _ => None,
    };
    let amount = match &metrics[9] {
        Some(Metric::Int(i)) => Some(*i as f64),
        Some(Metric::Float(f)) => Some(*f),
        _ => None,
    };
    Fact {
        touch: Touch {
            event_id: &rec.event_id,
            event_type: &rec.event_type,
            channel: &rec.channel,
            occurred_ms: rec.occurred_ms,
            case_id: rec.context[1].as_deref(),
            contact_id: rec.context[2].as_deref(),
            order_id: rec.context[0].as_deref(),
            resolved,
        },
        amount,
    }
}

/// Keys by the time something of theirs falls due (the earliest only), popped once that time is reached.
/// A key offered a later time keeps its earlier one; a popped key is offered again by whoever handles it.
#[derive(Default)]
struct DueIndex {
    heap: BinaryHeap<Reverse<(i64, String)>>,
    at: HashMap<String, i64>,
}

impl DueIndex {
    fn offer(&mut self, key: &str, deadline: Option<i64>) {
        let Some(deadline) = deadline else { return };
        if self.at.get(key).is_none_or(|&current| deadline < current) {
            self.at.insert(key.to_string(), deadline);
            self.heap.push(Reverse((deadline, key.to_string())));
        }
    }

    fn remove(&mut self, key: &str) {
        self.at.remove(key); // its heap entry is skipped when popped
    }

    /// The next key due at or before `until`, taken out of the index.
    fn pop_due(&mut self, until: i64) -> Option<String> {
        while let Some(Reverse((deadline, _))) = self.heap.peek() {
            if *deadline > until {
                return None;
            }
            let Reverse((deadline, key)) = self.heap.pop()?;
            if self.at.get(&key) == Some(&deadline) {
                self.at.remove(&key);
                return Some(key);
            }
        }
        None
    }
}

/// The customers of one stitch partition.
#[pyclass(module = "cx_core")]
pub struct Stage {
    partition: i64,
    policy: Policy,
    forward_ttl_ms: i64,
    /// Each key's changelog value, and when its earliest open journey times out (the watermark).
    entries: Entries,
    kinds: Kinds,
    #[pyo3(get)]
    max_event_ms: i64,
    forwards: IndexMap<String, i64>,
    held: IndexMap<String, i64>,
    /// When the window of a key's earliest undecided alert outcome ends (the partition's event time).
    watches: DueIndex,
}

impl Stage {
    fn new_tuple<'py>(&self, py: Python<'py>, class: &Py<PyAny>, fields: Bound<'py, PyTuple>) -> PyResult<Py<PyAny>> {
        Ok(self.kinds.tuple_new.bind(py).call1((class.bind(py), fields))?.unbind())
    }

    fn load(&self, _py: Python<'_>, key: &str) -> PyResult<Option<Entry>> {
        match self.entries.get(key) {
            None => Ok(None),
            Some(value) => codec::decode_entry(value).map(Some).map_err(|e| {
                pyo3::exceptions::PyValueError::new_err(format!("changelog value of {key} is damaged: {e}"))
            }),
        }
    }

    fn store(&mut self, _py: Python<'_>, key: &str, value: Vec<u8>, out: &mut Out) -> PyResult<()> {
        self.entries.insert(key, &value);
        out.changed.insert(key.to_string(), Some(value));
        Ok(())
    }

    /// Index the state's timers: its earliest open journey's timeout, its earliest undecided alert window's end.
    fn schedule(&mut self, state: &CustomerState) {
        let timeouts = &self.policy.journeys.timeouts;
        let timeout = state
            .journeys
            .iter()
            .filter(|j| j.terminal == 0 && j.emitted == Status::Open)
            .map(|j| j.last + timeouts[j.jtype as usize])
            .min();
        self.entries.offer(&state.key, timeout);
        let recovery = self.policy.recovery;
        let window_end =
            state.watches.iter().filter(|w| !Outcome::is_decided(w.reported)).map(|w| w.at + recovery + 1).min();
        self.watches.offer(&state.key, window_end);
    }

    /// The watched alerts whose outcome differs from the one last written, as of the customer's or the
    /// partition's newest event time (never the wall clock: a backlog being caught up would decide its alerts
    /// before the touchpoints of their windows are read).
    fn stale_outcomes(&self, state: &CustomerState) -> Vec<(usize, Outcome)> {
        let now = state.latest.max(self.max_event_ms);
        let recovery = self.policy.recovery;
        (state.watches.iter().enumerate())
            .map(|(i, w)| (i, state.outcome(w.at, recovery, now)))
            .filter(|(i, o)| (o.code(), o.at) != (state.watches[*i].reported, state.watches[*i].reported_at))
            .collect()
    }

    /// Write these outcomes (`stale_outcomes`) as `alert_outcomes` rows and record them as written.
    fn report_outcomes(&self, state: &mut CustomerState, stale: Vec<(usize, Outcome)>, now_ms: i64, out: &mut Out) {
        for (i, outcome) in stale {
            let (at, before) = (state.watches[i].at, state.watches[i].reported);
            if outcome.decided && (!Outcome::is_decided(before) || (before - 1) / 2 != outcome.outcome as u8) {
                *out.decided.entry(OUTCOMES[outcome.outcome]).or_default() += 1;
            }
            state.watches[i].reported = outcome.code();
            state.watches[i].reported_at = outcome.at;
            out.rows[T_OUTCOMES].push(vec![
                Cell::str(&state.watches[i].alert_id),
                Cell::str(&state.key),
                Cell::Int(at.div_euclid(1000)),
                Cell::str(OUTCOMES[outcome.outcome]),
                Cell::Int(i64::from(outcome.decided)),
                if outcome.at == 0 { Cell::Null } else { Cell::Int(outcome.at.div_euclid(1000)) },
                Cell::Int(state.version),
                Cell::Int(now_ms.div_euclid(1000)),
            ]);
        }
    }

    fn hold(&mut self, state: &CustomerState) {
        if state.held.is_empty() {
            self.held.shift_remove(&state.key);
        } else {
            self.held.insert(state.key.clone(), state.held_at + self.policy.anonymous_hold);
        }
    }

    fn retirement_row(key: &str, j: &Journey, into: &str, version: i64, now_ms: i64) -> Vec<Cell> {
        vec![
            Cell::Str(journeys::row_id(key, &j.jid).into()),
            Cell::str(key),
            Cell::str(JOURNEY_TYPES[j.jtype as usize]),
            Cell::str("abandoned"),
            Cell::Int(j.started.div_euclid(1000)),
            Cell::Int(j.last.div_euclid(1000)),
            Cell::Int(j.last.div_euclid(1000)),
            Cell::Int(0),
            Cell::Strs(Vec::new()),
            Cell::Int(0),
            Cell::str(into),
            Cell::Int(version),
            Cell::Int(now_ms.div_euclid(1000)),
        ]
    }

    #[allow(clippy::too_many_arguments)]
    fn signal_row(
        &self,
        event_id: &str,
        key: &str,
        experience_key: &str,
        signal: usize,
        channel: &str,
        event_type: &str,
        occurred_ms: i64,
        journey_id: &str,
    ) -> Vec<Cell> {
        let s = &self.policy.classifier.signals[signal];
        vec![
            Cell::str(event_id),
            Cell::str(key),
            Cell::str(experience_key),
            Cell::str(&s.name),
            Cell::Int(i64::from(s.polarity)),
            Cell::str(&s.dimension),
            Cell::str(channel),
            Cell::str(event_type),
            Cell::Int(occurred_ms.div_euclid(1000)),
            Cell::str(journey_id),
        ]
    }

    fn retro_rows(&self, key: &str, retro: &[RetroSignal], out: &mut Out) -> PyResult<()> {
        for r in retro {
            *out.signals.entry(self.policy.classifier.signals[r.signal].name.clone()).or_default() += 1;
            let row = self.signal_row(
                &r.event_id,
                key,
                &r.experience_key,
                r.signal,
                &r.channel,
                "contact_started",
                r.occurred_ms,
                "",
            );
            out.rows[T_SIGNALS].push(row);
        }
        Ok(())
    }

    fn retired_rows(&self, state: &CustomerState, retired: &[Journey], now_ms: i64, out: &mut Out) -> PyResult<()> {
        // A browse session fused into an earlier one keeps a row with zero touchpoints and a pointer.
        for journey in retired {
            let into = state.journeys.iter().find(|j| j.covers(journey)).map(|j| j.jid.as_str());
            let into_id = into.map_or_else(|| "merged".to_string(), |jid| journeys::row_id(&state.key, jid));
            out.rows[T_JOURNEYS].push(Self::retirement_row(&state.key, journey, &into_id, state.version, now_ms));
        }
        Ok(())
    }

    fn touchpoint_row(&self, rec: &Record, key: &str, applied: &Applied) -> Vec<Cell> {
        let text = |v: &Option<String>| Cell::str(v.as_deref().unwrap_or_default());
        let mut ids: [&str; 5] = [""; 5];
        for identifier in &rec.identifiers {
            let (kind, value) = identifier.split_once(':').unwrap_or((identifier.as_str(), ""));
            let slot = match kind {
                "anon" => 0,
                "device" => 1,
                "phone" => 2,
                "email" => 3,
                "wechat" => 4,
                _ => continue,
            };
            ids[slot] = value;
        }
        let names = applied.signals.iter().map(|&s| self.policy.classifier.signals[s].name.as_str());
        let journey_id =
            if applied.journey_id.is_empty() { String::new() } else { journeys::row_id(key, &applied.journey_id) };
        let m = &rec.metrics;
        let or_empty = |v: &Scalar| if matches!(v, Scalar::Null) { Cell::str("") } else { Cell::of(v) };
        let mut row = Vec::with_capacity(36);
        row.push(Cell::str(&rec.event_id));
        row.push(Cell::str(key));
        row.push(Cell::str(&rec.channel));
        row.push(Cell::str(&rec.event_type));
        row.push(Cell::Int(rec.occurred_ms.div_euclid(1000)));
        row.push(Cell::Int(rec.occurred_ms));
        row.push(Cell::Int(rec.received_ms.div_euclid(1000)));
        row.push(Cell::str(&rec.source));
        row.push(Cell::str(&applied.experience_key));
        row.push(Cell::Str(journey_id.into()));
        row.push(Cell::strs(names));
        row.push(text(&rec.customer_id));
        row.extend(ids.iter().map(|id| Cell::str(id)));
        row.extend(rec.context.iter().map(text));
        row.push(Cell::of(&m[0])); // wait_seconds
        row.push(Cell::of(&m[1])); // transfers
        row.push(or_empty(&m[2])); // handled_by
        row.push(match &m[3] {
            Scalar::Null => Cell::Null,
            v => Cell::Int(i64::from(v.truthy())),
        }); // resolved
        row.extend(m[4..10].iter().map(Cell::of)); // csat nps ces rating sentiment amount
        row.push(or_empty(&m[10])); // currency
        row.push(Cell::Str(rec.attributes_json().into()));
        row.push(Cell::Int(1));
        row
    }

    fn apply(&mut self, state: &mut CustomerState, rec: &Record, out: &mut Out) -> PyResult<()> {
        self.max_event_ms = self.max_event_ms.max(rec.occurred_ms);
        let metrics = metrics_of(rec);
        let hits = self.policy.classifier.classify(&rec.event_type, &metrics);
        let Some(applied) = state.apply(&fact(rec, &metrics), hits, event_hash(&rec.event_id), &self.policy) else {
            out.duplicates += 1;
            return Ok(());
        };
        let key = state.key.clone();
        out.rows[T_TOUCHPOINTS].push(self.touchpoint_row(rec, &key, &applied));
        let journey_id =
            if applied.journey_id.is_empty() { String::new() } else { journeys::row_id(&key, &applied.journey_id) };
        for &s in &applied.signals {
            *out.signals.entry(self.policy.classifier.signals[s].name.clone()).or_default() += 1;
            let row = self.signal_row(
                &rec.event_id,
                &key,
                &applied.experience_key,
                s,
                &rec.channel,
                &rec.event_type,
                rec.occurred_ms,
                &journey_id,
            );
            out.rows[T_SIGNALS].push(row);
        }
        if let Some(jtype) = applied.opened {
            *out.opened.entry(JOURNEY_TYPES[jtype as usize]).or_default() += 1;
        }
        self.retro_rows(&key, &applied.retro, out)?;
        self.retired_rows(state, &applied.retired, rec.occurred_ms, out)?;
        Ok(())
    }

    fn store_forward(&mut self, py: Python<'_>, key: &str, target: &str, now_ms: i64, out: &mut Out) -> PyResult<()> {
        self.store(py, key, codec::encode_forward(target, now_ms), out)?;
        self.forwards.insert(key.to_string(), now_ms);
        self.entries.clear_due(key);
        self.watches.remove(key);
        self.held.shift_remove(key);
        Ok(())
    }

    fn forget(&mut self, item: &ItemData, now_ms: i64, out: &mut Out) -> PyResult<()> {
        let existed = self.entries.remove(&item.key);
        self.watches.remove(&item.key);
        self.forwards.shift_remove(&item.key);
        self.held.shift_remove(&item.key);
        out.changed.insert(item.key.clone(), None);
        out.erased += i64::from(existed);
        let number: i64 = if item.blob.is_empty() {
            0
        } else {
            std::str::from_utf8(&item.blob).ok().and_then(|s| s.trim().parse().ok()).unwrap_or(0)
        };
        out.rows[T_ERASURES].push(vec![
            Cell::str(&item.target),
            Cell::str("state"),
            Cell::Int(number),
            Cell::Int(self.partition),
            Cell::Int(1),
            Cell::Int(i64::from(existed)),
            Cell::Int(now_ms.div_euclid(1000)),
        ]);
        Ok(())
    }

    fn pass_on(&mut self, py: Python<'_>, item: &ItemData, target: &str, now_ms: i64, out: &mut Out) -> PyResult<()> {
        if item.kind == "merge" {
            if item.target != target && item.target != item.key {
                let to = item.target.clone();
                self.store_forward(py, &item.key, &to, now_ms, out)?;
            }
            return Ok(());
        }
        let record = match &item.record {
            Some(rec) => {
                let moved = Record { key: target.to_string(), ..rec.clone() };
                moved.to_py(py, self.kinds.tuple_new.bind(py), self.kinds.record.bind(py))?
            }
            None => py.None().into_bound(py),
        };
        let fields = PyTuple::new(
            py,
            [
                item.kind.as_str().into_pyobject(py)?.into_any(),
                target.into_pyobject(py)?.into_any(),
                record,
                item.target.as_str().into_pyobject(py)?.into_any(),
                PyBytes::new(py, &item.blob).into_any(),
            ],
        )?;
        out.forward.push(self.new_tuple(py, &self.kinds.item, fields)?);
        if item.kind == "state" {
            // A state passing through: its journeys' pointers name ids under this key, so they point on.
            if let Ok(Entry::State(moved)) = codec::decode_entry(&item.blob) {
                let version = (moved.version + 1).max(now_ms);
                for journey in &moved.journeys {
                    let into = journeys::row_id(target, &journey.jid);
                    out.rows[T_JOURNEYS].push(Self::retirement_row(&item.key, journey, &into, version, now_ms));
                }
            }
        }
        Ok(())
    }

    fn customer_row(f: CustomerFields<'_>) -> Vec<Cell> {
        vec![
            Cell::str(f.0),
            Cell::Int(f.1),
            Cell::Int(f.2),
            Cell::Float(f.3),
            Cell::str(f.4),
            Cell::Int(f.5),
            Cell::Int(f.6),
            Cell::Float(f.7),
            Cell::Int(f.8),
            Cell::Int(f.9),
            Cell::str(f.10),
            Cell::Int(f.11),
        ]
    }

    fn move_out(
        &mut self,
        py: Python<'_>,
        state: CustomerState,
        target: &str,
        now_ms: i64,
        out: &mut Out,
    ) -> PyResult<()> {
        let blob = PyBytes::new(py, &codec::encode_state(&state));
        let fields = PyTuple::new(
            py,
            [
                "state".into_pyobject(py)?.into_any(),
                target.into_pyobject(py)?.into_any(),
                py.None().into_bound(py),
                state.key.as_str().into_pyobject(py)?.into_any(),
                blob.into_any(),
            ],
        )?;
        out.forward.push(self.new_tuple(py, &self.kinds.item, fields)?);
        let version = (state.version + 1).max(now_ms);
        let row = (
            state.key.as_str(),
            0,
            0,
            0.0,
            "none",
            state.latest.div_euclid(1000),
            version,
            0.0,
            0,
            0,
            target,
            now_ms.div_euclid(1000),
        );
        out.rows[T_CUSTOMERS].push(Self::customer_row(row));
        for old in std::iter::once(&state.key).chain(&state.aliases) {
            out.rows[T_OVERRIDES].push(vec![
                Cell::str(old),
                Cell::str(target),
                Cell::Int(now_ms.div_euclid(1000)),
                Cell::Int(version),
            ]);
        }
        for journey in &state.journeys {
            let into = journeys::row_id(target, &journey.jid);
            out.rows[T_JOURNEYS].push(Self::retirement_row(&state.key, journey, &into, version, now_ms));
        }
        out.merges += 1;
        Ok(())
    }

    /// Write the journey when its status or content changed; returns its status.
    #[allow(clippy::too_many_arguments)]
    fn journey_row(
        &self,
        state_key: &str,
        version: i64,
        journey: &mut Journey,
        watermark: i64,
        now_ms: i64,
        out: &mut Out,
    ) -> PyResult<Status> {
        let policy: &JourneyPolicy = &self.policy.journeys;
        let status = journey.status(watermark, policy);
        if journey.emitted == status {
            return Ok(status);
        }
        let ended_at = journey.ended_at(status);
        let jtype = JOURNEY_TYPES[journey.jtype as usize];
        if status != Status::Open && matches!(journey.emitted, Status::Never | Status::Open) {
            *out.closed.entry((jtype, status.name())).or_default() += 1;
            let end = ended_at.filter(|&e| e != 0).unwrap_or(journey.last);
            out.seconds.push((jtype, (end - journey.started) as f64 / 1000.0));
        }
        journey.emitted = status;
        out.rows[T_JOURNEYS].push(vec![
            Cell::Str(journeys::row_id(state_key, &journey.jid).into()),
            Cell::str(state_key),
            Cell::str(jtype),
            Cell::str(status.name()),
            Cell::Int(journey.started.div_euclid(1000)),
            ended_at.map_or(Cell::Null, |e| Cell::Int(e.div_euclid(1000))),
            Cell::Int(journey.last.div_euclid(1000)),
            Cell::Int(journey.events.len() as i64),
            Cell::strs(journeys::channel_names(journey.channels)),
            Cell::Int(i64::from(journey.dissatisfying)),
            Cell::str(""),
            Cell::Int(version),
            Cell::Int(now_ms.div_euclid(1000)),
        ]);
        Ok(status)
    }

    /// Alert the state's episodes not alerted yet (or hold them, for an anonymous key); its lifetime value.
    fn raise_alerts(
        &mut self,
        py: Python<'_>,
        state: &mut CustomerState,
        hold: bool,
        now_ms: i64,
        out: &mut Out,
    ) -> PyResult<f64> {
        let lifetime = state.lifetime_value();
        for crossing in state.new_crossings(&self.policy, hold) {
            let classifier: &Classifier = &self.policy.classifier;
            let mut names: Vec<&str> = classifier.names(crossing.mask);
            let mut dimensions: Vec<&str> = classifier
                .signals
                .iter()
                .filter(|s| names.contains(&s.name.as_str()))
                .map(|s| s.dimension.as_str())
                .collect();
            names.sort_unstable();
            dimensions.sort_unstable();
            dimensions.dedup();
            let alert = self.kinds.make_alert.bind(py).call1((
                state.key.as_str(),
                crossing.instant,
                crossing.before,
                crossing.keys.clone(),
                names,
                dimensions,
                lifetime,
                now_ms,
            ))?;
            let alert_id: String = alert.getattr("alert_id")?.extract()?;
            state.watches.push(Watch { alert_id, at: crossing.instant, reported: 0, reported_at: 0 });
            out.alerts.push(alert.unbind());
        }
        if !state.held.is_empty() && state.held_at == 0 {
            state.held_at = now_ms;
        }
        self.hold(state);
        Ok(lifetime)
    }

    fn finish(
        &mut self,
        py: Python<'_>,
        mut state: CustomerState,
        now_ms: i64,
        watermark: i64,
        out: &mut Out,
    ) -> PyResult<()> {
        let (key, version) = (state.key.clone(), state.version);
        for mut journey in state.prune(&self.policy, watermark) {
            self.journey_row(&key, version, &mut journey, watermark, now_ms, out)?;
        }
        let hold = self.policy.anonymous_hold > 0 && key.starts_with('~');
        let lifetime = self.raise_alerts(py, &mut state, hold, now_ms, out)?;
        let stale = self.stale_outcomes(&state);
        self.report_outcomes(&mut state, stale, now_ms, out);
        let counters = state.counters(&self.policy);
        let mut open = 0;
        let mut journeys = std::mem::take(&mut state.journeys);
        for journey in journeys.iter_mut() {
            open += i64::from(self.journey_row(&key, version, journey, watermark, now_ms, out)? == Status::Open);
        }
        state.journeys = journeys;
        let row = (
            key.as_str(),
            counters.dissatisfied as i64,
            counters.satisfied as i64,
            counters.score,
            counters.level,
            state.latest.div_euclid(1000),
            version,
            lifetime,
            state.exps.len() as i64,
            open,
            "",
            now_ms.div_euclid(1000),
        );
        out.rows[T_CUSTOMERS].push(Self::customer_row(row));
        self.store(py, &key, codec::encode_state(&state), out)?;
        self.schedule(&state); // after the store: a deadline is kept beside the key's value
        Ok(())
    }

    fn item(raw: &Bound<'_, PyAny>) -> PyResult<ItemData> {
        let record = raw.get_item(2)?;
        Ok(ItemData {
            kind: raw.get_item(0)?.extract()?,
            key: raw.get_item(1)?.extract()?,
            record: if record.is_none() { None } else { Some(Record::from_py(record.cast::<PyTuple>()?)?) },
            target: raw.get_item(3)?.extract()?,
            blob: raw.get_item(4)?.extract()?,
        })
    }

    /// Apply items in partition order; every state touched is written back once.
    fn run(&mut self, py: Python<'_>, items: Vec<ItemData>, now_ms: i64, watermark: i64) -> PyResult<Out> {
        let mut out = Out::default();
        let mut touched: IndexMap<String, CustomerState> = IndexMap::new();
        for item in items {
            if let Some(rec) = &item.record {
                out.received.push(rec.received_ms);
            }
            if item.kind == "forget" {
                touched.shift_remove(&item.key);
                self.forget(&item, now_ms, &mut out)?;
                continue;
            }
            // None: touched already in this batch; else what the partition holds for the key.
            let entry = if touched.contains_key(&item.key) { None } else { Some(self.load(py, &item.key)?) };
            if let Some(Some(Entry::Forward { target, .. })) = &entry {
                let target = target.clone();
                self.pass_on(py, &item, &target, now_ms, &mut out)?;
                continue;
            }
            if item.kind == "merge" {
                if item.target != item.key {
                    let state = match entry {
                        None => touched.shift_remove(&item.key),
                        Some(Some(Entry::State(s))) => Some(s),
                        _ => None,
                    };
                    if let Some(state) = state {
                        self.move_out(py, state, &item.target, now_ms, &mut out)?;
                    }
                    let (key, target) = (item.key.clone(), item.target.clone());
                    self.store_forward(py, &key, &target, now_ms, &mut out)?;
                }
                continue;
            }
            if let Some(loaded) = entry {
                let mut state = match loaded {
                    Some(Entry::State(s)) => s,
                    _ => CustomerState::new(&item.key),
                };
                // One version per batch: every row written for this key carries it.
                state.version = (state.version + 1).max(now_ms);
                touched.insert(item.key.clone(), state);
            }
            let Some(mut state) = touched.get_mut(&item.key).map(std::mem::take) else { continue };
            if item.kind == "tp" {
                if let Some(rec) = &item.record {
                    self.apply(&mut state, rec, &mut out)?;
                }
            } else if item.kind == "state" {
                let moved = codec::decode_entry(&item.blob).map_err(|e| {
                    pyo3::exceptions::PyValueError::new_err(format!("a state moved to {} is damaged: {e}", item.key))
                })?;
                if let Entry::State(moved) = moved {
                    let (retro, retired) = state.absorb(moved, &self.policy);
                    let key = state.key.clone();
                    self.retro_rows(&key, &retro, &mut out)?;
                    self.retired_rows(&state, &retired, now_ms, &mut out)?;
                }
            }
            if let Some(slot) = touched.get_mut(&item.key) {
                *slot = state;
            }
        }
        for (_, state) in touched {
            self.finish(py, state, now_ms, watermark, &mut out)?;
        }
        Ok(out)
    }

    fn output<'py>(&self, py: Python<'py>, out: Out) -> PyResult<Bound<'py, PyTuple>> {
        let rows = PyDict::new(py);
        let classes = [
            &self.kinds.touchpoint_row,
            &self.kinds.signal_row,
            &self.kinds.customer_row,
            &self.kinds.journey_row,
            &self.kinds.override_row,
            &self.kinds.erasure_row,
            &self.kinds.outcome_row,
        ];
        for ((table, buf), class) in self.kinds.tables.iter().zip(out.rows).zip(classes) {
            if !buf.is_empty() {
                rows.set_item(table.bind(py), Bound::new(py, Rows::new(py, buf, class, &self.kinds.tuple_new))?)?;
            }
        }
        let changed = PyDict::new(py);
        for (k, v) in out.changed {
            match v {
                Some(bytes) => changed.set_item(k, PyBytes::new(py, &bytes))?,
                None => changed.set_item(k, py.None())?,
            }
        }
        let closed = PyDict::new(py);
        for ((jtype, status), n) in out.closed {
            closed.set_item((jtype, status), n)?;
        }
        PyTuple::new(
            py,
            [
                rows.into_any(),
                PyList::new(py, out.forward)?.into_any(),
                PyList::new(py, out.alerts)?.into_any(),
                changed.into_any(),
                out.duplicates.into_pyobject(py)?.into_any(),
                out.signals.into_iter().collect::<Vec<_>>().into_pyobject(py)?.into_any(),
                out.opened.into_iter().collect::<Vec<_>>().into_pyobject(py)?.into_any(),
                closed.into_any(),
                out.seconds.into_pyobject(py)?.into_any(),
                out.merges.into_pyobject(py)?.into_any(),
                out.erased.into_pyobject(py)?.into_any(),
                out.received.into_pyobject(py)?.into_any(),
                out.decided.into_iter().collect::<Vec<_>>().into_pyobject(py)?.into_any(),
            ],
        )
    }
}

#[pymethods]
impl Stage {
    /// `policy`: (rules JSON, {journey type: idle ms}, retention ms, window, lateness, half_life, anonymous_hold,
    /// recovery); `classes`: (TouchpointRecord, Item, TouchpointRow, SignalRow, CustomerRow, JourneyRow,
    /// IdentityOverrideRow, ErasureRow, AlertOutcomeRow); `tables`: the seven Table members in that row order;
    /// `make_alert(key, instant, before, keys, signals, dimensions, lifetime, now_ms)`.
    #[new]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        partition: i64,
        policy: &Bound<'_, PyTuple>,
        forward_ttl_ms: i64,
        classes: &Bound<'_, PyTuple>,
        tables: &Bound<'_, PyTuple>,
        make_alert: Py<PyAny>,
    ) -> PyResult<Self> {
        let rules: Vec<u8> = policy.get_item(0)?.extract()?;
        let classifier = Classifier::from_json(&rules).map_err(pyo3::exceptions::PyValueError::new_err)?;
        let timeouts: HashMap<String, i64> = policy.get_item(1)?.extract()?;
        let timeout = |t: &str| {
            timeouts.get(t).copied().ok_or_else(|| pyo3::exceptions::PyValueError::new_err(format!("no {t} timeout")))
        };
        let policy = Policy {
            classifier,
            journeys: JourneyPolicy {
                timeouts: [timeout("purchase")?, timeout("service")?, timeout("browse")?],
                retention: policy.get_item(2)?.extract()?,
            },
            window: policy.get_item(3)?.extract()?,
            lateness: policy.get_item(4)?.extract()?,
            half_life: policy.get_item(5)?.extract()?,
            anonymous_hold: policy.get_item(6)?.extract()?,
            recovery: policy.get_item(7)?.extract()?,
        };
        let class = |i: usize| classes.get_item(i).map(Bound::unbind);
        let table = |i: usize| tables.get_item(i).map(Bound::unbind);
        let kinds = Kinds {
            tuple_new: py.get_type::<PyTuple>().getattr("__new__")?.unbind(),
            record: class(0)?,
            item: class(1)?,
            touchpoint_row: class(2)?,
            signal_row: class(3)?,
            customer_row: class(4)?,
            journey_row: class(5)?,
            override_row: class(6)?,
            erasure_row: class(7)?,
            outcome_row: class(8)?,
            tables: [table(0)?, table(1)?, table(2)?, table(3)?, table(4)?, table(5)?, table(6)?],
            make_alert,
        };
        Ok(Stage {
            partition,
            policy,
            forward_ttl_ms,
            entries: Entries::default(),
            kinds,
            max_event_ms: 0,
            forwards: IndexMap::new(),
            held: IndexMap::new(),
            watches: DueIndex::default(),
        })
    }

    /// The serialized entry of a key (a copy), or None.
    fn get<'py>(&self, py: Python<'py>, key: &str) -> Option<Bound<'py, PyBytes>> {
        self.entries.get(key).map(|v| PyBytes::new(py, v))
    }

    /// The keys held, in no particular order.
    fn keys(&self) -> Vec<String> {
        self.entries.keys().collect()
    }

    fn __len__(&self) -> usize {
        self.entries.len()
    }

    fn __contains__(&self, key: &str) -> bool {
        self.entries.contains(key)
    }

    /// (keys, serialized bytes) held.
    fn stats(&self) -> (usize, usize) {
        (self.entries.len(), self.entries.value_bytes())
    }

    /// Anonymous keys whose alerts wait for identity.
    #[getter]
    fn held(&self) -> usize {
        self.held.len()
    }

    /// Rebuild from changelog entries `(key, value or None)` in log order (the last value of a key wins),
    /// then re-index due journeys, holds and forwards.
    fn restore(&mut self, py: Python<'_>, entries: &Bound<'_, PyAny>) -> PyResult<()> {
        for entry in entries.try_iter()? {
            let (key, value): (String, Option<Vec<u8>>) = entry?.extract()?;
            match value {
                Some(v) => {
                    self.entries.insert(&key, &v);
                }
                None => {
                    self.entries.remove(&key);
                }
            }
        }
        let keys: Vec<String> = self.entries.keys().collect();
        for key in keys {
            match self.load(py, &key)? {
                Some(Entry::Forward { created_ms, .. }) => {
                    self.forwards.insert(key, created_ms);
                }
                Some(Entry::State(state)) => {
                    self.max_event_ms = self.max_event_ms.max(state.latest);
                    self.schedule(&state);
                    self.hold(&state);
                }
                None => {}
            }
        }
        Ok(())
    }

    /// Apply items (Python `Item`s) in partition order; every state touched is written back once.
    fn process<'py>(
        &mut self,
        py: Python<'py>,
        items: &Bound<'py, PyList>,
        now_ms: i64,
        watermark: i64,
    ) -> PyResult<Bound<'py, PyTuple>> {
        let items = items.iter().map(|raw| Self::item(&raw)).collect::<PyResult<Vec<_>>>()?;
        let out = self.run(py, items, now_ms, watermark)?;
        self.output(py, out)
    }

    /// `process` of the items in stitch messages as the topic carries them (`encode_items`), decoded here:
    /// the records never become Python objects. ValueError for a message that is no list of items.
    fn process_encoded<'py>(
        &mut self,
        py: Python<'py>,
        messages: &Bound<'py, PyList>,
        now_ms: i64,
        watermark: i64,
    ) -> PyResult<Bound<'py, PyTuple>> {
        let mut items = Vec::new();
        for message in messages.iter() {
            let data = message.cast::<PyBytes>()?;
            record::decode_items(data.as_bytes(), &mut items)
                .map_err(|e| pyo3::exceptions::PyValueError::new_err(format!("a stitch message is damaged: {e}")))?;
        }
        let out = self.run(py, items, now_ms, watermark)?;
        self.output(py, out)
    }

    /// Close journeys whose idle timeout passed, alert held episodes now due, drop old forwards.
    fn expire<'py>(&mut self, py: Python<'py>, now_ms: i64, watermark: i64) -> PyResult<Bound<'py, PyTuple>> {
        let mut out = Out::default();
        loop {
            let due = self.entries.take_due(watermark);
            if due.is_empty() {
                break;
            }
            for key in due {
                let Some(Entry::State(mut entry)) = self.load(py, &key)? else { continue };
                let mut changed = false;
                let mut journeys = std::mem::take(&mut entry.journeys);
                for journey in journeys.iter_mut() {
                    if journey.emitted != journey.status(watermark, &self.policy.journeys) {
                        entry.version = (entry.version + 1).max(now_ms);
                        self.journey_row(&key, entry.version, journey, watermark, now_ms, &mut out)?;
                        changed = true;
                    }
                }
                entry.journeys = journeys;
                if changed {
                    self.store(py, &key, codec::encode_state(&entry), &mut out)?;
                }
                self.schedule(&entry);
            }
        }
        while let Some(key) = self.watches.pop_due(self.max_event_ms) {
            // The partition's event time passed an alert's window: decide it (lost, when nothing came).
            let Some(Entry::State(mut entry)) = self.load(py, &key)? else { continue };
            let stale = self.stale_outcomes(&entry);
            if !stale.is_empty() {
                entry.version = (entry.version + 1).max(now_ms);
                self.report_outcomes(&mut entry, stale, now_ms, &mut out);
                self.store(py, &key, codec::encode_state(&entry), &mut out)?;
            }
            self.schedule(&entry);
        }
        let due: Vec<String> = self.held.iter().filter(|(_, &at)| at <= now_ms).map(|(k, _)| k.clone()).collect();
        for key in due {
            // An anonymous key not linked within the hold: its episodes are alerted under it.
            self.held.shift_remove(&key);
            let Some(Entry::State(mut entry)) = self.load(py, &key)? else { continue };
            entry.version = (entry.version + 1).max(now_ms);
            self.raise_alerts(py, &mut entry, false, now_ms, &mut out)?;
            let stale = self.stale_outcomes(&entry);
            self.report_outcomes(&mut entry, stale, now_ms, &mut out);
            self.store(py, &key, codec::encode_state(&entry), &mut out)?;
            self.schedule(&entry);
        }
        let old: Vec<String> =
            self.forwards.iter().filter(|(_, &at)| at + self.forward_ttl_ms < now_ms).map(|(k, _)| k.clone()).collect();
        for key in old {
            self.forwards.shift_remove(&key);
            self.entries.remove(&key);
            out.changed.insert(key, None);
        }
        self.output(py, out)
    }
}
