//! A validated touchpoint as the core holds it between ingest and the stitch topic, and stage 1's routing:
//! which customer key and stitch partition each record goes to, and the link claims it makes
//! (Contract 2 in docs/contract.md; the Python statement of the same rules is streams/domain/routing.py).
//!
//! A record travels as a msgpack array in `TouchpointRecord`'s field order; an item of the stitch topic is
//! `["tp", record]`, a message of items an array of them, a claims message an array of
//! `[customer_id or nil, [identifier...], occurred_ms, event_id]`: byte for byte what
//! `streams.domain.codec` writes for the same values, so either side reads what the other wrote.

use std::collections::HashMap;

use indexmap::IndexMap;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};

use crate::codec::{Reader, Value, Writer};
use crate::json::Json;
use crate::rows::Cell;

/// A metric's value as the wire model let it through (a JSON scalar of the field's type).
#[derive(Clone, Debug, PartialEq)]
pub enum Scalar {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    Str(String),
}

impl Scalar {
    /// A JSON value of a metrics field; None for an array or object (which the wire model refuses).
    pub fn of(value: &Json<'_>) -> Option<Scalar> {
        Some(match value {
            Json::Null => Scalar::Null,
            Json::Bool(b) => Scalar::Bool(*b),
            Json::Int(i) => Scalar::Int(*i),
            Json::UInt(u) => Scalar::UInt(*u),
            Json::Float(f) => Scalar::Float(*f),
            Json::Str(s) => Scalar::Str(s.to_string()),
            Json::Array(_) | Json::Object(_) => return None,
        })
    }

    fn to_py<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        Cell::of(self).to_py(py)
    }

    fn of_value(v: &Value) -> Result<Scalar, String> {
        Ok(match v {
            Value::Nil => Scalar::Null,
            Value::Bool(b) => Scalar::Bool(*b),
            Value::Int(i) => Scalar::Int(*i),
            Value::UInt(u) => Scalar::UInt(*u),
            Value::Float(f) => Scalar::Float(*f),
            Value::Str(s) => Scalar::Str(s.clone()),
            other => return Err(format!("a metric value {other:?}")),
        })
    }

    fn of_py(v: &Bound<'_, PyAny>) -> PyResult<Scalar> {
        if v.is_none() {
            return Ok(Scalar::Null);
        }
        if let Ok(b) = v.cast::<pyo3::types::PyBool>() {
            return Ok(Scalar::Bool(b.is_true()));
        }
        if v.is_instance_of::<pyo3::types::PyInt>() {
            return Ok(match v.extract::<i64>() {
                Ok(i) => Scalar::Int(i),
                Err(_) => Scalar::UInt(v.extract()?),
            });
        }
        if let Ok(f) = v.cast::<pyo3::types::PyFloat>() {
            return Ok(Scalar::Float(f.value()));
        }
        Ok(Scalar::Str(v.extract()?))
    }

    /// Python's truth of the value.
    pub fn truthy(&self) -> bool {
        match self {
            Scalar::Null => false,
            Scalar::Bool(b) => *b,
            Scalar::Int(i) => *i != 0,
            Scalar::UInt(u) => *u != 0,
            Scalar::Float(f) => *f != 0.0,
            Scalar::Str(s) => !s.is_empty(),
        }
    }

    fn encode(&self, w: &mut Writer) {
        match self {
            Scalar::Null => w.nil(),
            Scalar::Bool(b) => w.boolean(*b),
            Scalar::Int(i) => w.int(*i),
            Scalar::UInt(u) => w.uint(*u),
            Scalar::Float(f) => w.float(*f),
            Scalar::Str(s) => w.str(s),
        }
    }
}

/// `TouchpointRecord` (schemas/records.py), field for field.
#[derive(Clone, Debug, PartialEq)]
pub struct Record {
    pub event_id: String,
    pub occurred_ms: i64,
    pub received_ms: i64,
    pub source: String,
    pub channel: String,
    pub event_type: String,
    pub customer_id: Option<String>,
    pub identifiers: Vec<String>,
    /// order_id, case_id, contact_id, session_id, agent_id, store_id
    pub context: [Option<String>; 6],
    /// wait_seconds, transfers, handled_by, resolved, csat, nps, ces, rating, sentiment, amount, currency
    pub metrics: [Scalar; 11],
    /// Redacted names and values in input order; None when the touchpoint had none.
    pub attributes: Option<Vec<(String, String)>>,
    pub key: String,
}

impl Record {
    /// The Python `TouchpointRecord` (`tuple_new(record_type, fields)`).
    pub fn to_py<'py>(
        &self,
        py: Python<'py>,
        tuple_new: &Bound<'py, PyAny>,
        record_type: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let mut fields: Vec<Bound<'py, PyAny>> = Vec::with_capacity(27);
        fields.push(self.event_id.as_str().into_pyobject(py)?.into_any());
        fields.push(self.occurred_ms.into_pyobject(py)?.into_any());
        fields.push(self.received_ms.into_pyobject(py)?.into_any());
        fields.push(self.source.as_str().into_pyobject(py)?.into_any());
        fields.push(self.channel.as_str().into_pyobject(py)?.into_any());
        fields.push(self.event_type.as_str().into_pyobject(py)?.into_any());
        fields.push(self.customer_id.as_deref().into_pyobject(py)?.into_any());
        fields.push(PyTuple::new(py, &self.identifiers)?.into_any());
        for id in &self.context {
            fields.push(id.as_deref().into_pyobject(py)?.into_any());
        }
        for m in &self.metrics {
            fields.push(m.to_py(py)?);
        }
        fields.push(match &self.attributes {
            Some(attrs) => {
                let dict = PyDict::new(py);
                for (k, v) in attrs {
                    dict.set_item(k, v)?;
                }
                dict.into_any()
            }
            None => py.None().into_bound(py),
        });
        fields.push(self.key.as_str().into_pyobject(py)?.into_any());
        tuple_new.call1((record_type, PyTuple::new(py, fields)?))
    }

    pub fn encode(&self, w: &mut Writer) {
        w.array(27);
        w.str(&self.event_id);
        w.int(self.occurred_ms);
        w.int(self.received_ms);
        w.str(&self.source);
        w.str(&self.channel);
        w.str(&self.event_type);
        w.opt_str(self.customer_id.as_deref());
        w.array(self.identifiers.len());
        for i in &self.identifiers {
            w.str(i);
        }
        for id in &self.context {
            w.opt_str(id.as_deref());
        }
        for m in &self.metrics {
            m.encode(w);
        }
        match &self.attributes {
            Some(attrs) => {
                w.map(attrs.len());
                for (k, v) in attrs {
                    w.str(k);
                    w.str(v);
                }
            }
            None => w.nil(),
        }
        w.str(&self.key);
    }
}

impl Record {
    /// A Python `TouchpointRecord`.
    pub fn from_py(t: &Bound<'_, PyTuple>) -> PyResult<Record> {
        let at = |i: usize| t.get_item(i);
        let opt = |i: usize| -> PyResult<Option<String>> {
            let v = at(i)?;
            if v.is_none() {
                Ok(None)
            } else {
                v.extract().map(Some)
            }
        };
        let mut context: [Option<String>; 6] = Default::default();
        for (slot, i) in context.iter_mut().zip(8..14) {
            *slot = opt(i)?;
        }
        let mut metrics: [Scalar; 11] = std::array::from_fn(|_| Scalar::Null);
        for (slot, i) in metrics.iter_mut().zip(14..25) {
            *slot = Scalar::of_py(&at(i)?)?;
        }
        let attrs = at(25)?;
        let attributes = if attrs.is_none() {
            None
        } else {
            let dict = attrs.cast::<PyDict>()?;
            Some(dict.iter().map(|(k, v)| Ok((k.extract()?, v.extract()?))).collect::<PyResult<Vec<_>>>()?)
        };
        Ok(Record {
            event_id: at(0)?.extract()?,
            occurred_ms: at(1)?.extract()?,
            received_ms: at(2)?.extract()?,
            source: at(3)?.extract()?,
            channel: at(4)?.extract()?,
            event_type: at(5)?.extract()?,
            customer_id: opt(6)?,
            identifiers: at(7)?.try_iter()?.map(|i| i?.extract()).collect::<PyResult<_>>()?,
            context,
            metrics,
            attributes,
            key: at(26)?.extract()?,
        })
    }

    /// The attributes as the `touchpoints.attributes` column holds them: orjson's compact JSON object.
    pub fn attributes_json(&self) -> String {
        let Some(attrs) = self.attributes.as_ref().filter(|a| !a.is_empty()) else { return "{}".to_string() };
        let mut out = String::with_capacity(2 + attrs.iter().map(|(k, v)| k.len() + v.len() + 6).sum::<usize>());
        out.push('{');
        for (n, (k, v)) in attrs.iter().enumerate() {
            if n > 0 {
                out.push(',');
            }
            json_string(&mut out, k);
            out.push(':');
            json_string(&mut out, v);
        }
        out.push('}');
        out
    }
}

/// A JSON string as orjson writes it: `"` and `\\` escaped, control characters as \b \t \n \f \r or \u00xx,
/// everything else (non-ASCII included) as it is.
fn json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\u{c}' => out.push_str("\\f"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// One item of a stitch message: a touchpoint (`record`), or a merge, moved state or forget.
pub struct ItemData {
    pub kind: String,
    pub key: String,
    pub record: Option<Record>,
    pub target: String,
    pub blob: Vec<u8>,
}

/// The items of one stitch message (`streams.domain.codec.encode_items`), read straight into records.
pub fn decode_items(data: &[u8], out: &mut Vec<ItemData>) -> Result<(), String> {
    let mut r = Reader::new(data);
    let n = r.array_len()?;
    out.reserve(n.min(data.len()));
    for _ in 0..n {
        let parts = r.array_len()?;
        let kind = r.str()?;
        if kind == "tp" {
            if parts != 2 {
                return Err("a touchpoint item has two parts".into());
            }
            let record = Record::decode(&mut r)?;
            out.push(ItemData {
                kind: kind.to_string(),
                key: record.key.clone(),
                record: Some(record),
                target: String::new(),
                blob: Vec::new(),
            });
            continue;
        }
        if parts != 4 {
            return Err(format!("a {kind} item has four parts"));
        }
        let key = r.str()?.to_string();
        let target = r.str()?.to_string();
        let blob = r.bin()?.to_vec();
        out.push(ItemData { kind: kind.to_string(), key, record: None, target, blob });
    }
    if !r.done() {
        return Err("bytes after the items".into());
    }
    Ok(())
}

impl Record {
    /// A record as `encode` writes it (27 fields), read without an intermediate value tree.
    pub fn decode(r: &mut Reader<'_>) -> Result<Record, String> {
        let n = r.array_len()?;
        if n != 27 {
            return Err(format!("a record has 27 fields, not {n}"));
        }
        let event_id = r.str()?.to_string();
        let occurred_ms = r.int()?;
        let received_ms = r.int()?;
        let source = r.str()?.to_string();
        let channel = r.str()?.to_string();
        let event_type = r.str()?.to_string();
        let customer_id = r.opt_str()?.map(str::to_string);
        let ids = r.array_len()?;
        let mut identifiers = Vec::with_capacity(ids.min(8));
        for _ in 0..ids {
            identifiers.push(r.str()?.to_string());
        }
        let mut context: [Option<String>; 6] = Default::default();
        for slot in context.iter_mut() {
            *slot = r.opt_str()?.map(str::to_string);
        }
        let mut metrics: [Scalar; 11] = std::array::from_fn(|_| Scalar::Null);
        for slot in metrics.iter_mut() {
            *slot = Scalar::of_value(&r.any()?)?;
        }
        let attributes = if r.nil()? {
            None
        } else {
            let n = r.map_len()?;
            let mut attrs = Vec::with_capacity(n.min(64));
            for _ in 0..n {
                let k = r.str()?.to_string();
                attrs.push((k, r.str()?.to_string()));
            }
            Some(attrs)
        };
        let key = r.str()?.to_string();
        Ok(Record {
            event_id,
            occurred_ms,
            received_ms,
            source,
            channel,
            event_type,
            customer_id,
            identifiers,
            context,
            metrics,
            attributes,
            key,
        })
    }
}

/// The stable partition of a customer key: CRC-32 (zlib's) modulo the partition count.
pub fn partition_for(key: &str, partitions: u32) -> u32 {
    crc32fast::hash(key.as_bytes()) % partitions.max(1)
}

/// Kafka's murmur2 of a record key (the Java client's `Utils.murmur2`, aiokafka's `murmur2`).
pub fn murmur2(data: &[u8]) -> u32 {
    const M: u32 = 0x5bd1_e995;
    let mut h: u32 = 0x9747_b28c ^ data.len() as u32;
    let mut chunks = data.chunks_exact(4);
    for c in chunks.by_ref() {
        let mut k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> 24;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M) ^ k;
    }
    let rest = chunks.remainder();
    if rest.len() >= 3 {
        h ^= u32::from(rest[2]) << 16;
    }
    if rest.len() >= 2 {
        h ^= u32::from(rest[1]) << 8;
    }
    if !rest.is_empty() {
        h ^= u32::from(rest[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^ (h >> 15)
}

/// The partition Kafka's default partitioner gives a keyed record: `(murmur2(key) & 0x7fffffff) % partitions`.
#[pyfunction]
pub fn kafka_partition(key: &[u8], partitions: u32) -> u32 {
    (murmur2(key) & 0x7fff_ffff) % partitions.max(1)
}

/// The key of an identifier nobody linked yet: `~anon:<id>`, `~phone:<hash>` …
fn self_key(identifier: &str) -> String {
    format!("~{identifier}")
}

/// What stage 1 sends on: stitch messages by partition (in first-use order) and one claims message.
pub struct Routed {
    pub stitch: IndexMap<u32, Writer>,
    pub items: IndexMap<u32, usize>,
    pub claims: Writer,
    pub claim_count: usize,
    pub channels: IndexMap<String, i64>,
}

/// Route `records` (their `key` set here) with `lookup(identifier) -> key or None`, the identity replica.
pub fn route(
    records: &mut [Record],
    partitions: u32,
    lookup: &mut dyn FnMut(&str) -> PyResult<Option<String>>,
) -> PyResult<Routed> {
    let mut known: HashMap<String, Option<String>> = HashMap::new();
    let mut resolve = |identifier: &str| -> PyResult<Option<String>> {
        if let Some(hit) = known.get(identifier) {
            return Ok(hit.clone());
        }
        let found = lookup(identifier)?;
        known.insert(identifier.to_string(), found.clone());
        Ok(found)
    };
    let mut stitch_items: IndexMap<u32, Vec<usize>> = IndexMap::new();
    let mut claims: Vec<usize> = Vec::new();
    let mut channels: IndexMap<String, i64> = IndexMap::new();
    for (n, rec) in records.iter_mut().enumerate() {
        // The customer id; else what the first linked identifier resolves to; else the first identifier's own key.
        // (An empty value counts as none, as it is falsy to the Python statement of the rules.)
        let customer_id = rec.customer_id.as_deref().filter(|c| !c.is_empty());
        let mut key = customer_id.map(str::to_string);
        if key.is_none() {
            for identifier in &rec.identifiers {
                if let Some(k) = resolve(identifier)? {
                    key = Some(k);
                    break;
                }
            }
        }
        let key = match key {
            Some(k) => k,
            None => self_key(rec.identifiers.first().map(String::as_str).unwrap_or_default()),
        };
        // A claim when the touchpoint joins identifiers not yet known to be together.
        if rec.identifiers.len() + usize::from(customer_id.is_some()) >= 2 {
            let mut together = true;
            for identifier in &rec.identifiers {
                let k = resolve(identifier)?.filter(|k| !k.is_empty()).unwrap_or_else(|| self_key(identifier));
                if k != key {
                    together = false;
                    break;
                }
            }
            if !together {
                claims.push(n);
            }
        }
        *channels.entry(rec.channel.clone()).or_default() += 1;
        stitch_items.entry(partition_for(&key, partitions)).or_default().push(n);
        rec.key = key;
    }
    let mut out = Routed {
        stitch: IndexMap::new(),
        items: IndexMap::new(),
        claims: Writer(Vec::new()),
        claim_count: claims.len(),
        channels,
    };
    for (p, members) in stitch_items {
        let mut w = Writer(Vec::with_capacity(members.len() * 256));
        w.array(members.len());
        for &n in &members {
            w.array(2);
            w.str("tp");
            records[n].encode(&mut w);
        }
        out.items.insert(p, members.len());
        out.stitch.insert(p, w);
    }
    if !claims.is_empty() {
        let w = &mut out.claims;
        w.array(claims.len());
        for &n in &claims {
            let rec = &records[n];
            w.array(4);
            w.opt_str(rec.customer_id.as_deref());
            w.array(rec.identifiers.len());
            for i in &rec.identifiers {
                w.str(i);
            }
            w.int(rec.occurred_ms);
            w.str(&rec.event_id);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_are_zlib_crc32() {
        // zlib.crc32(b"C-1") == 0x6fa1b8c5 (and of the empty key, 0)
        assert_eq!(crc32fast::hash(b""), 0);
        assert_eq!(partition_for("", 8), 0);
        assert_eq!(crc32fast::hash(b"123456789"), 0xcbf4_3926);
    }
}
