//! Stage 1 for a whole batch of Kafka messages in one call: decode, check every Contract 1 reason,
//! and make each accepted touchpoint storable (times in ms, ids without PII, identifiers hashed).
//!
//! Python's `streams.domain.ingest` drives it and builds the dead letters. Rules that depend on the
//! Unicode database or on phone-number metadata (`streams.domain.pii`: phone and e-mail
//! normalisation, PII inside ids, redaction of labels and attributes, non-ASCII blanks and junk) are
//! asked of that module, so each has one implementation; the ASCII answers, which decide almost
//! every value, are native.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use blake2::digest::consts::U16;
use blake2::digest::VariableOutput;
use blake2::{Blake2bMac, Blake2bVar};
use hmac::{Hmac, Mac};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyString, PyTuple};
use sha2::Sha256;

use crate::json::{self, Json, Object};
use crate::record::{self, Record, Scalar};
use crate::schema::{self, Detail, Reason, Refusal, Shown, CONTEXT_FIELDS, METRIC_FIELDS};
use crate::text;
use crate::time::{self, MAX_TIME_MS};

pub const MAX_EVENT_BYTES: usize = 64 * 1024;
pub const MAX_BATCH_EVENTS: usize = 1000;
pub const MAX_BATCH_BYTES: usize = 8 * 1024 * 1024;
/// The most bytes orjson writes for one double (`-2.2250738585072014e-308`).
const FLOAT_SLACK: usize = 24;

/// identity field -> identifier type, in Contract 2's priority order (customer_id apart).
pub const IDENTIFIER_TYPES: [(&str, &str); 5] = [
    ("anonymous_id", "anon"),
    ("device_id", "device"),
    ("phone", "phone"),
    ("email", "email"),
    ("wechat_openid", "wechat"),
];

/// Why a touchpoint was not made into a record: a refusal, or an error of a Python rule (a bug).
enum Fail {
    Refused(Reason, String),
    Py(PyErr),
}

impl From<PyErr> for Fail {
    fn from(err: PyErr) -> Self {
        Fail::Py(err)
    }
}

impl From<std::convert::Infallible> for Fail {
    fn from(never: std::convert::Infallible) -> Self {
        match never {}
    }
}

fn refused(reason: Reason, detail: impl Into<String>) -> Fail {
    Fail::Refused(reason, detail.into())
}

/// id field -> how many of its values were a phone or e-mail and were stored as their hash.
#[derive(Default)]
struct Counts(Vec<(String, i64)>);

impl Counts {
    fn add(&mut self, name: &str) {
        match self.0.iter_mut().find(|(n, _)| n == name) {
            Some((_, c)) => *c += 1,
            None => self.0.push((name.to_string(), 1)),
        }
    }
}

/// A candidate touchpoint: the decoded event, its message, and its place in a batch envelope.
struct Candidate<'a> {
    event: Json<'a>,
    message: usize,
    position: Option<usize>,
}

/// One rejection for Python to turn into a dead letter.
struct Rejection<'a> {
    message: usize,
    index: usize,
    element: bool,
    reason: Reason,
    detail: Option<String>,
    payload: Option<Json<'a>>,
}

/// The rules of `streams.domain.pii` the core asks (looked up once).
struct Rules {
    is_junk: Py<PyAny>,
    is_blank: Py<PyAny>,
    has_control: Py<PyAny>,
    pii_in_id: Py<PyAny>,
    normalize_phone: Py<PyAny>,
    normalize_email: Py<PyAny>,
    redact_label: Py<PyAny>,
    redact_text: Py<PyAny>,
}

impl Rules {
    fn of(pii: &Bound<'_, PyAny>) -> PyResult<Self> {
        let rule = |name: &str| pii.getattr(name).map(Bound::unbind);
        Ok(Rules {
            is_junk: rule("is_junk")?,
            is_blank: rule("is_blank")?,
            has_control: rule("has_control")?,
            pii_in_id: rule("pii_in_id")?,
            normalize_phone: rule("normalize_phone")?,
            normalize_email: rule("normalize_email")?,
            redact_label: rule("redact_label")?,
            redact_text: rule("redact_text")?,
        })
    }
}

impl<'a> Rejection<'a> {
    /// A candidate refused: a batch element by its place, a single-event message as index 0.
    fn of(cand: Candidate<'a>, reason: Reason, detail: Option<String>) -> Self {
        Rejection {
            message: cand.message,
            index: cand.position.unwrap_or(0),
            element: cand.position.is_some(),
            reason,
            detail,
            payload: Some(cand.event),
        }
    }
}

/// The ingest stage configured once per worker (`IngestConfig` in Python).
/// One validated batch: records in the core, the rest as the Python values `ingest` returns.
struct Run<'py> {
    records: Vec<Record>,
    rejected: Bound<'py, PyList>,
    replaced: i64,
    hashed: Bound<'py, PyDict>,
}

#[pyclass(frozen, module = "cx_core")]
pub struct Ingest {
    secret: Vec<u8>,
    region_py: Py<PyString>,
    blocklist: HashSet<String>,
    blocklist_py: Py<PyAny>,
    future_tolerance_ms: i64,
    raw_id_fields: HashSet<String>,
    /// `tuple.__new__` and the record's NamedTuple class: a record is made without running Python code.
    tuple_new: Py<PyAny>,
    record_type: Py<PyAny>,
    rules: Rules,
    encode: Py<PyAny>,
    known: Known,
}

/// Phones and e-mails normalised and hashed before. Normalising a phone is Python's phonenumbers, a third
/// of ingest's instructions, and a customer's touchpoints repeat their identifiers. Entries are keyed by a
/// keyed BLAKE2b digest of the raw value, so no raw PII is kept; the values are the stored hashes' bytes.
/// The only cache of them: Python's rules keep none (a cache there would hold raw values).
struct Known {
    key: [u8; 32],
    hashed: Mutex<HashMap<[u8; 16], [u8; 32]>>,
}

/// Entries before the cache starts over: 7/8 of 2^17 slots of 48 bytes, about 6.4 MB.
const KNOWN_MAX: usize = 114_688;

impl Known {
    fn new(secret: &[u8]) -> Known {
        let mut key = [0u8; 32];
        if let Ok(mut derive) = Blake2bVar::new(32) {
            blake2::digest::Update::update(&mut derive, b"cx-core: identifiers normalised before\0");
            blake2::digest::Update::update(&mut derive, secret);
            let _ = derive.finalize_variable(&mut key);
        }
        Known { key, hashed: Mutex::new(HashMap::new()) }
    }

    fn digest(&self, kind: &str, raw: &str) -> Option<[u8; 16]> {
        let mut mac = Blake2bMac::<U16>::new_from_slice(&self.key).ok()?;
        Mac::update(&mut mac, kind.as_bytes());
        Mac::update(&mut mac, b"\0");
        Mac::update(&mut mac, raw.as_bytes());
        Some(mac.finalize().into_bytes().into())
    }

    fn get(&self, digest: &[u8; 16]) -> Option<[u8; 32]> {
        self.hashed.lock().ok()?.get(digest).copied()
    }

    fn put(&self, digest: [u8; 16], hashed: [u8; 32]) {
        if let Ok(mut map) = self.hashed.lock() {
            if map.len() >= KNOWN_MAX {
                map.clear();
            }
            map.insert(digest, hashed);
        }
    }
}

impl Ingest {
    /// Validate a batch: the records, and the rejections, replaced timestamps and PII counts as Python values.
    fn run<'py>(&self, py: Python<'py>, messages: &Bound<'py, PyList>, now_ms: i64) -> PyResult<Run<'py>> {
        let mut rejections = Vec::new();
        let mut candidates = Vec::new();
        let mut received = Vec::with_capacity(messages.len());
        let mut replaced = 0i64;
        let mut early = Vec::new();
        // The messages' bytes, held while the decoded values borrow from them.
        let values: Vec<Bound<'py, PyAny>> = messages.iter().map(|m| m.get_item(0)).collect::<PyResult<_>>()?;
        for (index, message) in messages.iter().enumerate() {
            let timestamp_ms: i64 = message.get_item(4)?.extract()?;
            let at = kafka_time_ms(timestamp_ms, now_ms);
            if at != timestamp_ms {
                // Missing (0, -1) is common and harmless; beyond what DateTime holds is counted.
                replaced += i64::from(!(-1..=MAX_TIME_MS).contains(&timestamp_ms));
            }
            received.push(at);
            let value = &values[index];
            let raw: &[u8] = if value.is_none() { b"" } else { value.cast::<PyBytes>()?.as_bytes() };
            let start = candidates.len();
            self.unpack(py, index, raw, &mut early, &mut candidates)?;
            // Each candidate of this message, checked for the specific reasons in order.
            let mut kept = Vec::with_capacity(candidates.len() - start);
            for cand in candidates.drain(start..) {
                let verdict = schema::precheck(&cand.event, &mut |s| self.is_junk(py, s))?;
                match verdict {
                    Ok(()) => kept.push(cand),
                    Err(refusal) => {
                        let (reason, detail) = self.detail(py, refusal)?;
                        early.push(Rejection::of(cand, reason, detail));
                    }
                }
            }
            candidates.extend(kept);
        }
        rejections.append(&mut early);
        let mut records = Vec::with_capacity(candidates.len());
        let mut counts = Counts::default();
        for cand in candidates {
            let outcome = match &cand.event {
                Json::Object(map) if schema::conforms(&cand.event) => {
                    self.record(py, map, now_ms, received[cand.message], &mut counts)
                }
                _ => Err(Fail::Refused(Reason::InvalidField, String::new())),
            };
            let (reason, detail) = match outcome {
                Ok(record) => {
                    records.push(record);
                    continue;
                }
                Err(Fail::Py(err)) => return Err(err),
                Err(Fail::Refused(reason, detail)) if detail.is_empty() => (reason, None),
                Err(Fail::Refused(reason, detail)) => (reason, Some(detail)),
            };
            rejections.push(Rejection::of(cand, reason, detail));
        }
        let rejected = PyList::empty(py);
        for r in rejections {
            let payload = match &r.payload {
                Some(v) => json::to_py(py, v)?,
                None => py.None().into_bound(py),
            };
            rejected.append((
                r.message,
                r.index,
                r.element,
                r.reason.as_str(),
                r.detail,
                payload,
                received[r.message],
            ))?;
        }
        let hashed = PyDict::new(py);
        for (name, count) in counts.0 {
            hashed.set_item(name, count)?;
        }
        Ok(Run { records, rejected, replaced, hashed })
    }

    fn hash(&self, kind: &str, value: &str) -> String {
        hex(&self.mac(kind, value))
    }

    /// HMAC-SHA256 of `kind:value` (the stored hash is its hex).
    fn mac(&self, kind: &str, value: &str) -> [u8; 32] {
        // HMAC takes a key of any length: new_from_slice cannot fail for it.
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&self.secret) else {
            return [0; 32];
        };
        mac.update(kind.as_bytes());
        mac.update(b":");
        mac.update(value.as_bytes());
        mac.finalize().into_bytes().into()
    }

    fn is_junk(&self, py: Python<'_>, value: &str) -> PyResult<bool> {
        match text::ascii_is_junk(value, &self.blocklist) {
            Some(answer) => Ok(answer),
            None => self.rules.is_junk.bind(py).call1((value, self.blocklist_py.bind(py)))?.is_truthy(),
        }
    }

    fn is_blank(&self, py: Python<'_>, value: &str) -> PyResult<bool> {
        match text::ascii_is_blank(value) {
            Some(answer) => Ok(answer),
            None => self.rules.is_blank.bind(py).call1((value,))?.is_truthy(),
        }
    }

    fn has_control(&self, py: Python<'_>, value: &str) -> PyResult<bool> {
        match text::ascii_has_control(value) {
            Some(answer) => Ok(answer),
            None => self.rules.has_control.bind(py).call1((value,))?.is_truthy(),
        }
    }

    /// `value` unless it holds a control character inside (surrounding whitespace is not part of an id).
    fn checked_id<'v>(&self, py: Python<'_>, name: &str, value: &'v str) -> Result<&'v str, Fail> {
        if self.has_control(py, value)? && self.has_control(py, text::py_strip(value))? {
            return Err(refused(Reason::InvalidField, format!("{name}: control characters are not allowed in an id")));
        }
        Ok(value)
    }

    /// An id as stored: a phone or e-mail in it becomes its keyed hash, unless the settings allow it raw.
    fn private_id(&self, py: Python<'_>, value: &str, name: &str, counts: Option<&mut Counts>) -> PyResult<String> {
        if self.raw_id_fields.contains(name)
            || text::ascii_has_no_pii(value) == Some(true)
            || text::ascii_may_hold_pii(value) == Some(false)
        {
            return Ok(value.to_string());
        }
        let found = self.rules.pii_in_id.bind(py).call1((value, self.region_py.bind(py)))?;
        if found.is_none() {
            return Ok(value.to_string());
        }
        let (kind, normal): (String, String) = found.extract()?;
        if let Some(counts) = counts {
            counts.add(name);
        }
        Ok(format!("{kind}:{}", self.hash(&kind, &normal)))
    }

    /// The value part of an identifier; Err(message) when a phone or e-mail is not one.
    fn identifier(
        &self,
        py: Python<'_>,
        name: &str,
        kind: &str,
        value: &str,
        counts: Option<&mut Counts>,
    ) -> PyResult<Result<String, String>> {
        let raw = match kind {
            "phone" => text::py_strip(value),
            "email" => value,
            _ => return Ok(Ok(self.private_id(py, text::py_strip(value), name, counts)?)),
        };
        // The rules are pure functions of the value (and the region, fixed here): a hit is what they'd give.
        let digest = self.known.digest(kind, raw);
        if let Some(hashed) = digest.as_ref().and_then(|d| self.known.get(d)) {
            return Ok(Ok(hex(&hashed)));
        }
        let normalised = if kind == "phone" {
            self.rules.normalize_phone.bind(py).call1((raw, self.region_py.bind(py)))
        } else {
            self.rules.normalize_email.bind(py).call1((raw,))
        };
        match normalised {
            Ok(normal) => {
                let hashed = self.mac(kind, &normal.extract::<String>()?);
                if let Some(d) = digest {
                    self.known.put(d, hashed);
                }
                Ok(Ok(hex(&hashed)))
            }
            Err(err) if err.is_instance_of::<PyValueError>(py) => Ok(Err(err.value(py).str()?.to_string())),
            Err(err) => Err(err),
        }
    }

    fn redact(&self, py: Python<'_>, rule: &str, value: &str) -> PyResult<String> {
        if text::ascii_maybe_pii(value) == Some(false) || text::ascii_may_hold_pii(value) == Some(false) {
            return Ok(value.to_string());
        }
        let out = if rule == "redact_label" {
            self.rules.redact_label.bind(py).call1((value, self.region_py.bind(py)))?
        } else {
            self.rules.redact_text.bind(py).call1((value,))?
        };
        out.extract()
    }

    fn context_id(
        &self,
        py: Python<'_>,
        name: &str,
        value: Option<&Json<'_>>,
        counts: &mut Counts,
    ) -> Result<Option<String>, Fail> {
        let Some(Json::Str(value)) = value else { return Ok(None) };
        if value.is_empty() || self.is_blank(py, value)? {
            return Ok(None);
        }
        let checked = self.checked_id(py, &format!("context.{name}"), value)?;
        Ok(Some(self.private_id(py, checked, name, Some(counts))?))
    }

    /// The record of a touchpoint the wire model accepted, or why it cannot be stored.
    fn record(
        &self,
        py: Python<'_>,
        event: &Object<'_>,
        now_ms: i64,
        received_ms: i64,
        counts: &mut Counts,
    ) -> Result<Record, Fail> {
        let string = |key: &str| event.get(key).and_then(Json::as_str).unwrap_or_default();
        let event_id = self.checked_id(py, "event_id", string("event_id"))?;
        if self.is_blank(py, event_id)? {
            return Err(refused(Reason::InvalidField, "event_id: must hold a visible character"));
        }
        let source = self.checked_id(py, "source", string("source"))?;
        if self.is_blank(py, source)? {
            return Err(refused(Reason::InvalidField, "source: must hold a visible character"));
        }
        let occurred_ms =
            time::parse_ms(string("occurred_at")).map_err(|e| refused(Reason::InvalidField, e.detail()))?;
        if occurred_ms > now_ms + self.future_tolerance_ms {
            let ahead = occurred_ms - now_ms;
            // Python's "{:.0f}" of ahead / 1000: round half to even.
            let (q, r) = (ahead / 1000, ahead % 1000);
            let secs = if r > 500 || (r == 500 && q % 2 == 1) { q + 1 } else { q };
            return Err(refused(
                Reason::FutureTimestamp,
                format!("occurred_at is {secs} s ahead of the pipeline clock"),
            ));
        }
        let empty = Object::default();
        let identity = event.get("identity").and_then(Json::as_object).unwrap_or(&empty);
        let mut customer_id = None;
        if let Some(Json::Str(raw)) = identity.get("customer_id") {
            let stripped = text::py_strip(raw);
            if !self.is_junk(py, stripped)? {
                if stripped.starts_with('~') {
                    return Err(refused(
                        Reason::InvalidField,
                        "identity.customer_id: '~' prefix is reserved for anonymous keys",
                    ));
                }
                let checked = self.checked_id(py, "identity.customer_id", stripped)?;
                customer_id = Some(self.private_id(py, checked, "customer_id", Some(counts))?);
            }
        }
        let mut identifiers = Vec::with_capacity(2);
        for (name, kind) in IDENTIFIER_TYPES {
            let Some(Json::Str(value)) = identity.get(name) else { continue };
            if self.is_junk(py, value)? {
                continue;
            }
            if kind != "phone" && kind != "email" {
                self.checked_id(py, &format!("identity.{name}"), value)?;
            }
            match self.identifier(py, name, kind, value, Some(counts))? {
                Ok(v) => identifiers.push(format!("{kind}:{v}")),
                Err(message) => return Err(refused(Reason::InvalidField, format!("identity.{name}: {message}"))),
            }
        }
        if customer_id.is_none() && identifiers.is_empty() {
            return Err(refused(Reason::MissingIdentity, "identity: only placeholder identifiers"));
        }
        let context = event.get("context").and_then(Json::as_object).filter(|c| !c.is_empty());
        let mut context_ids: [Option<String>; 6] = Default::default();
        for (slot, name) in context_ids.iter_mut().zip(CONTEXT_FIELDS) {
            if let Some(ctx) = context {
                *slot = self.context_id(py, name, ctx.get(name), counts)?;
            }
        }
        let attributes = match event.get("attributes").and_then(Json::as_object).filter(|a| !a.is_empty()) {
            Some(attrs) => Some(self.attributes(py, attrs)?),
            None => None,
        };
        let metrics_in = event.get("metrics").and_then(Json::as_object);
        let mut metrics: [Scalar; 11] = std::array::from_fn(|_| Scalar::Null);
        for (slot, name) in metrics.iter_mut().zip(METRIC_FIELDS) {
            if let Some(v) = metrics_in.and_then(|m| m.get(name)) {
                *slot = Scalar::of(v)
                    .ok_or_else(|| refused(Reason::InvalidField, format!("metrics.{name}: not a scalar")))?;
            }
        }
        Ok(Record {
            event_id: self.private_id(py, event_id, "event_id", Some(counts))?,
            occurred_ms,
            received_ms,
            source: self.redact(py, "redact_label", source)?,
            channel: string("channel").to_string(),
            event_type: string("event_type").to_string(),
            customer_id,
            identifiers,
            context: context_ids,
            metrics,
            attributes,
            key: String::new(),
        })
    }

    /// Free-form attributes, keys and values redacted; two keys redacted alike are numbered in input order.
    fn attributes(&self, py: Python<'_>, attrs: &Object<'_>) -> PyResult<Vec<(String, String)>> {
        let mut out = Vec::with_capacity(attrs.len());
        let mut taken: HashSet<String> = HashSet::with_capacity(attrs.len());
        for (key, value) in attrs.iter() {
            let mut name = self.redact(py, "redact_text", key)?;
            if taken.contains(&name) {
                let mut n = 2;
                while taken.contains(&format!("{name}#{n}")) {
                    n += 1;
                }
                name = format!("{name}#{n}");
            }
            let value = self.redact(py, "redact_text", value.as_str().unwrap_or_default())?;
            taken.insert(name.clone());
            out.push((name, value));
        }
        Ok(out)
    }

    /// Whether a batch element's compact encoding is over 64 KiB, exactly as orjson writes it.
    fn element_too_large(&self, py: Python<'_>, event: &Json<'_>) -> PyResult<bool> {
        let (len, floats) = json::encoded_len(event);
        // orjson's length lies in len ..= len + 24 per double.
        if len > MAX_EVENT_BYTES {
            return Ok(true);
        }
        if len + floats * FLOAT_SLACK <= MAX_EVENT_BYTES {
            return Ok(false);
        }
        let encoded = self.encode.bind(py).call1((json::to_py(py, event)?,))?;
        Ok(encoded.len()? > MAX_EVENT_BYTES)
    }

    /// Split one message into candidate events; whole-message problems become rejections.
    fn unpack<'a>(
        &self,
        py: Python<'_>,
        index: usize,
        raw: &'a [u8],
        out: &mut Vec<Rejection<'a>>,
        candidates: &mut Vec<Candidate<'a>>,
    ) -> PyResult<()> {
        let mut reject = |reason: Reason, detail: String, payload: Option<Json<'a>>| {
            out.push(Rejection { message: index, index: 0, element: false, reason, detail: Some(detail), payload });
        };
        if raw.len() > MAX_BATCH_BYTES {
            reject(Reason::TooLarge, format!("message is {} bytes; at most 8 MiB", raw.len()), None);
            return Ok(());
        }
        let doc = match json::parse(raw) {
            Ok(doc) => doc,
            Err(err) => {
                reject(Reason::InvalidJson, format!("not UTF-8 JSON: {err}"), None);
                return Ok(());
            }
        };
        let Json::Object(map) = doc else {
            reject(Reason::NotAnObject, format!("a touchpoint is a JSON object, got {}", json::kind_of(&doc)), None);
            return Ok(());
        };
        if map.contains_key("events") && !map.contains_key("event_id") {
            if map.len() != 1 {
                let mut extra: Vec<&str> = map.keys().filter(|k| *k != "events").collect();
                extra.sort();
                extra.truncate(5);
                let listed = PyList::new(py, extra)?.repr()?.to_string();
                reject(Reason::InvalidField, format!("batch envelope allows only 'events', got {listed}"), None);
                return Ok(());
            }
            let events = match map.into_values().next() {
                Some(Json::Array(events)) if !events.is_empty() => events,
                _ => {
                    reject(Reason::InvalidField, "events: must be a non-empty array".into(), None);
                    return Ok(());
                }
            };
            if events.len() > MAX_BATCH_EVENTS {
                reject(Reason::TooLarge, format!("batch of {} touchpoints; at most 1000", events.len()), None);
                return Ok(());
            }
            for (i, event) in events.into_iter().enumerate() {
                // Only a batch over 64 KiB can hold a touchpoint over 64 KiB.
                if raw.len() > MAX_EVENT_BYTES && self.element_too_large(py, &event)? {
                    out.push(Rejection {
                        message: index,
                        index: i,
                        element: true,
                        reason: Reason::TooLarge,
                        detail: Some("touchpoint over 64 KiB".into()),
                        payload: Some(event),
                    });
                    continue;
                }
                candidates.push(Candidate { event, message: index, position: Some(i) });
            }
            return Ok(());
        }
        let doc = Json::Object(map);
        if raw.len() > MAX_EVENT_BYTES {
            reject(Reason::TooLarge, format!("touchpoint is {} bytes; at most 64 KiB", raw.len()), Some(doc));
            return Ok(());
        }
        candidates.push(Candidate { event: doc, message: index, position: None });
        Ok(())
    }

    fn detail(&self, py: Python<'_>, refusal: Refusal) -> PyResult<(Reason, Option<String>)> {
        let (reason, detail) = refusal;
        Ok(match detail {
            Detail::Text(text) => (reason, Some(text)),
            Detail::Repr { format, value } => {
                let shown = match value {
                    Shown::Str(text) => PyString::new(py, &text).repr()?.to_string(),
                    Shown::Float(f) => f.into_pyobject(py)?.repr()?.to_string(),
                };
                (reason, Some(format.replacen("{}", &shown, 1)))
            }
            Detail::Model => (reason, None),
        })
    }
}

/// The Kafka record timestamp, or `now_ms` when it is missing (<= 0) or beyond what a DateTime holds.
pub fn kafka_time_ms(timestamp_ms: i64, now_ms: i64) -> i64 {
    if 0 < timestamp_ms && timestamp_ms <= MAX_TIME_MS {
        timestamp_ms
    } else {
        now_ms
    }
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    out
}

#[pymethods]
impl Ingest {
    #[new]
    #[pyo3(signature = (secret, region, blocklist, future_tolerance_ms, raw_id_fields, record_type, pii, encode))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        secret: Vec<u8>,
        region: String,
        blocklist: Bound<'_, PyAny>,
        future_tolerance_ms: i64,
        raw_id_fields: HashSet<String>,
        record_type: Py<PyAny>,
        pii: Bound<'_, PyAny>,
        encode: Py<PyAny>,
    ) -> PyResult<Self> {
        Ok(Ingest {
            region_py: PyString::new(py, &region).unbind(),
            blocklist: blocklist.extract()?,
            blocklist_py: blocklist.unbind(),
            future_tolerance_ms,
            raw_id_fields,
            tuple_new: py.get_type::<PyTuple>().getattr("__new__")?.unbind(),
            record_type,
            rules: Rules::of(&pii)?,
            encode,
            known: Known::new(&secret),
            secret,
        })
    }

    /// Validate a batch of messages `(value, topic, partition, offset, timestamp_ms)`.
    ///
    /// Returns `(records, rejections, replaced_timestamps, pii_hashed)`; a rejection is
    /// `(message_index, index, element, reason, detail or None for the wire model's wording,
    /// payload or None, received_ms)`, in the order the Python stage always produced them.
    fn ingest<'py>(
        &self,
        py: Python<'py>,
        messages: &Bound<'py, PyList>,
        now_ms: i64,
    ) -> PyResult<Bound<'py, PyTuple>> {
        let run = self.run(py, messages, now_ms)?;
        let (tuple_new, record_type) = (self.tuple_new.bind(py), self.record_type.bind(py));
        let records = PyList::empty(py);
        for record in &run.records {
            records.append(record.to_py(py, tuple_new, record_type)?)?;
        }
        PyTuple::new(
            py,
            [
                records.into_any(),
                run.rejected.into_any(),
                run.replaced.into_pyobject(py)?.into_any(),
                run.hashed.into_any(),
            ],
        )
    }

    /// Stage 1 in one call: validate, then route every record with `lookup(identifier) -> key or None` over
    /// `partitions` stitch partitions. Returns `(stitch, claims, channels, rejections, replaced_timestamps,
    /// pii_hashed)`: `stitch` is `[(partition, message bytes, items)]` in first-use order, `claims` the
    /// claims message's bytes or None, `channels` `[(channel, records)]`; the rest as `ingest` returns them.
    fn ingest_routed<'py>(
        &self,
        py: Python<'py>,
        messages: &Bound<'py, PyList>,
        now_ms: i64,
        lookup: &Bound<'py, PyAny>,
        partitions: u32,
    ) -> PyResult<Bound<'py, PyTuple>> {
        let mut run = self.run(py, messages, now_ms)?;
        let mut ask = |identifier: &str| -> PyResult<Option<String>> { lookup.call1((identifier,))?.extract() };
        let routed = record::route(&mut run.records, partitions, &mut ask)?;
        let stitch = PyList::empty(py);
        for (p, w) in &routed.stitch {
            stitch.append((*p, PyBytes::new(py, &w.0), routed.items[p]))?;
        }
        let claims = if routed.claim_count > 0 {
            PyBytes::new(py, &routed.claims.0).into_any()
        } else {
            py.None().into_bound(py)
        };
        let channels: Vec<(String, i64)> = routed.channels.into_iter().collect();
        PyTuple::new(
            py,
            [
                stitch.into_any(),
                claims,
                channels.into_pyobject(py)?.into_any(),
                run.rejected.into_any(),
                run.replaced.into_pyobject(py)?.into_any(),
                run.hashed.into_any(),
            ],
        )
    }

    /// An id as stored (a phone or e-mail in it replaced by its keyed hash); for dead letters' subjects.
    fn stored_id(&self, py: Python<'_>, value: &str, name: &str) -> PyResult<String> {
        self.private_id(py, value, name, None)
    }

    /// The value part of an identifier of `kind`; ValueError when a phone or e-mail is not one.
    fn identifier_value(&self, py: Python<'_>, name: &str, kind: &str, value: &str) -> PyResult<String> {
        self.identifier(py, name, kind, value, None)?.map_err(PyValueError::new_err)
    }
}
