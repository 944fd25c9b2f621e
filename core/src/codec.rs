//! The changelog's encoding of a customer state or forward: msgpack, as the reference model under
//! `tests/reference/codec.py` writes it, so a worker restores any changelog either of them wrote.
//!
//! state:   [2, key, version, latest, horizon, [ekey, first_neg, first_pos, mask, last]*,
//!           [[jid, jtype, started, last, terminal, channels, dissatisfying, emitted, hashes]...],
//!           [order_id, time, amount]*, [[anchor, at, ref, ekey, event_id, channel, journey_id, flagged]...],
//!           alerted, aliases, held, held_at, [alert_id, at, reported, reported_at]*]
//!          (the watched alerts absent when none)
//! forward: [0, target, created_ms]
//! `hashes` is the journey's sorted 64-bit event hashes as little-endian bytes.
//!
//! Every time in a state but `latest` is written relative to it: `latest - t`, or nil for 0 (none), so the
//! usual time is a byte or two where a millisecond timestamp is nine (a customer's state: ~230 -> ~165
//! bytes). States written before this (tag 1) hold the times as they are, and the fields from `held` on may
//! be missing from them; both read.

use crate::customer::{Contact, CustomerState, Experience, Watch};
use crate::journeys::{Journey, Status};

/// A decoded changelog entry (a state is by far the common one: not boxed, decoded straight into place).
#[derive(Clone, Debug, PartialEq)]
#[allow(clippy::large_enum_variant)]
pub enum Entry {
    State(CustomerState),
    Forward { target: String, created_ms: i64 },
}

// --- writing ------------------------------------------------------------------------------------

/// msgpack as msgpack-python's `packb(..., use_bin_type=True)` writes it: the smallest form of each value.
pub struct Writer(pub Vec<u8>);

impl Writer {
    pub fn int(&mut self, v: i64) {
        let out = &mut self.0;
        if v >= 0 {
            let u = v as u64;
            if u < 128 {
                out.push(u as u8);
            } else if u <= u8::MAX as u64 {
                out.extend([0xcc, u as u8]);
            } else if u <= u16::MAX as u64 {
                out.push(0xcd);
                out.extend((u as u16).to_be_bytes());
            } else if u <= u32::MAX as u64 {
                out.push(0xce);
                out.extend((u as u32).to_be_bytes());
            } else {
                out.push(0xcf);
                out.extend(u.to_be_bytes());
            }
        } else if v >= -32 {
            out.push(v as i8 as u8);
        } else if v >= i8::MIN as i64 {
            out.extend([0xd0, v as i8 as u8]);
        } else if v >= i16::MIN as i64 {
            out.push(0xd1);
            out.extend((v as i16).to_be_bytes());
        } else if v >= i32::MIN as i64 {
            out.push(0xd2);
            out.extend((v as i32).to_be_bytes());
        } else {
            out.push(0xd3);
            out.extend(v.to_be_bytes());
        }
    }

    pub fn uint(&mut self, u: u64) {
        if u <= i64::MAX as u64 {
            self.int(u as i64);
        } else {
            self.0.push(0xcf);
            self.0.extend(u.to_be_bytes());
        }
    }

    pub fn float(&mut self, f: f64) {
        self.0.push(0xcb);
        self.0.extend(f.to_be_bytes());
    }

    pub fn boolean(&mut self, b: bool) {
        self.0.push(if b { 0xc3 } else { 0xc2 });
    }

    fn len(&mut self, n: usize, fix: u8, fix_max: usize, m8: Option<u8>, m16: u8, m32: u8) {
        let out = &mut self.0;
        if n <= fix_max {
            out.push(fix | n as u8);
        } else if let (Some(marker), true) = (m8, n <= u8::MAX as usize) {
            out.extend([marker, n as u8]);
        } else if n <= u16::MAX as usize {
            out.push(m16);
            out.extend((n as u16).to_be_bytes());
        } else {
            out.push(m32);
            out.extend((n as u32).to_be_bytes());
        }
    }

    pub fn array(&mut self, n: usize) {
        self.len(n, 0x90, 15, None, 0xdc, 0xdd);
    }

    pub fn map(&mut self, n: usize) {
        self.len(n, 0x80, 15, None, 0xde, 0xdf);
    }

    pub fn nil(&mut self) {
        self.0.push(0xc0);
    }

    pub fn opt_str(&mut self, s: Option<&str>) {
        match s {
            Some(s) => self.str(s),
            None => self.nil(),
        }
    }

    pub fn str(&mut self, s: &str) {
        self.len(s.len(), 0xa0, 31, Some(0xd9), 0xda, 0xdb);
        self.0.extend(s.as_bytes());
    }

    pub fn bin(&mut self, b: &[u8]) {
        // msgpack has no fixbin: bin8 from 0 bytes.
        if b.len() <= u8::MAX as usize {
            self.0.extend([0xc4, b.len() as u8]);
        } else if b.len() <= u16::MAX as usize {
            self.0.push(0xc5);
            self.0.extend((b.len() as u16).to_be_bytes());
        } else {
            self.0.push(0xc6);
            self.0.extend((b.len() as u32).to_be_bytes());
        }
        self.0.extend(b);
    }

    /// A time of a state: relative to the state's latest event time, nil for none (0).
    pub fn time(&mut self, t: i64, latest: i64) {
        if t == 0 {
            self.nil();
        } else {
            self.int(latest.wrapping_sub(t));
        }
    }

    fn times(&mut self, v: &[i64], latest: i64) {
        self.array(v.len());
        for &t in v {
            self.time(t, latest);
        }
    }
}

/// The tags of the entries: a forward, a state with absolute times (before), a state with relative times.
const FORWARD: i64 = 0;
const STATE_ABSOLUTE: i64 = 1;
const STATE: i64 = 2;

pub fn encode_forward(target: &str, created_ms: i64) -> Vec<u8> {
    let mut w = Writer(Vec::with_capacity(16 + target.len()));
    w.array(3);
    w.int(FORWARD);
    w.str(target);
    w.int(created_ms);
    w.0
}

pub fn encode_state(s: &CustomerState) -> Vec<u8> {
    let latest = s.latest;
    let mut w = Writer(Vec::with_capacity(192));
    w.array(if s.watches.is_empty() { 13 } else { 14 });
    w.int(STATE);
    w.str(&s.key);
    w.time(s.version, latest);
    w.int(latest);
    w.time(s.horizon, latest);
    w.array(s.exps.len() * 5);
    for (k, e) in &s.exps {
        w.str(k);
        w.time(e.first_neg, latest);
        w.time(e.first_pos, latest);
        w.uint(e.mask);
        w.time(e.last, latest);
    }
    w.array(s.journeys.len());
    for j in &s.journeys {
        w.array(9);
        w.str(&j.jid);
        w.int(i64::from(j.jtype));
        w.time(j.started, latest);
        w.time(j.last, latest);
        w.time(j.terminal, latest);
        w.int(i64::from(j.channels));
        w.boolean(j.dissatisfying);
        w.int(j.emitted as i64);
        let hashes: Vec<u8> = j.events.iter().flat_map(|e| e.to_le_bytes()).collect();
        w.bin(&hashes);
    }
    w.array(s.orders.len() * 3);
    for (order, (t, amount)) in &s.orders {
        w.str(order);
        w.time(*t, latest);
        w.float(*amount);
    }
    w.array(s.contacts.len());
    for c in &s.contacts {
        w.array(8);
        w.str(&c.anchor);
        w.time(c.at, latest);
        w.str(&c.reference);
        w.str(&c.experience_key);
        w.str(&c.event_id);
        w.str(&c.channel);
        w.str(&c.journey_id);
        w.boolean(c.flagged);
    }
    w.times(&s.alerted, latest);
    w.array(s.aliases.len());
    for a in &s.aliases {
        w.str(a);
    }
    w.times(&s.held, latest);
    w.time(s.held_at, latest);
    if !s.watches.is_empty() {
        w.array(s.watches.len() * 4);
    }
    for watch in &s.watches {
        w.str(&watch.alert_id);
        w.time(watch.at, latest);
        w.int(i64::from(watch.reported));
        w.time(watch.reported_at, latest);
    }
    w.0
}

// --- reading ------------------------------------------------------------------------------------

/// A decoded msgpack value.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Nil,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    Str(String),
    Bin(Vec<u8>),
    Array(Vec<Value>),
    Map(Vec<(Value, Value)>),
}

/// One msgpack document (the whole of `data`); Err for anything else.
pub fn decode_value(data: &[u8]) -> Result<Value, String> {
    let mut r = Reader { b: data, at: 0 };
    let doc = r.value(0)?;
    if r.at != data.len() {
        return Err("bytes after the document".into());
    }
    Ok(doc)
}

/// A msgpack reader over one buffer: generic values (`value`), or typed reads that borrow from the buffer.
pub struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    pub fn new(b: &'a [u8]) -> Self {
        Reader { b, at: 0 }
    }

    pub fn done(&self) -> bool {
        self.at == self.b.len()
    }

    fn peek(&self) -> Result<u8, String> {
        self.b.get(self.at).copied().ok_or_else(|| "truncated entry".to_string())
    }

    /// A nil is consumed and true; anything else is left in place.
    pub fn nil(&mut self) -> Result<bool, String> {
        let is_nil = self.peek()? == 0xc0;
        self.at += usize::from(is_nil);
        Ok(is_nil)
    }

    pub fn array_len(&mut self) -> Result<usize, String> {
        match self.take(1)?[0] {
            m @ 0x90..=0x9f => Ok(usize::from(m & 0x0f)),
            m @ (0xdc | 0xdd) => Ok(self.be(2 << (m - 0xdc))? as usize),
            m => Err(format!("expected an array, got marker 0x{m:02x}")),
        }
    }

    pub fn map_len(&mut self) -> Result<usize, String> {
        match self.take(1)?[0] {
            m @ 0x80..=0x8f => Ok(usize::from(m & 0x0f)),
            m @ (0xde | 0xdf) => Ok(self.be(2 << (m - 0xde))? as usize),
            m => Err(format!("expected a map, got marker 0x{m:02x}")),
        }
    }

    pub fn str(&mut self) -> Result<&'a str, String> {
        let n = match self.take(1)?[0] {
            m @ 0xa0..=0xbf => usize::from(m & 0x1f),
            m @ 0xd9..=0xdb => self.be(1 << (m - 0xd9))? as usize,
            m => return Err(format!("expected a string, got marker 0x{m:02x}")),
        };
        std::str::from_utf8(self.take(n)?).map_err(|e| e.to_string())
    }

    pub fn opt_str(&mut self) -> Result<Option<&'a str>, String> {
        if self.nil()? {
            Ok(None)
        } else {
            self.str().map(Some)
        }
    }

    pub fn bin(&mut self) -> Result<&'a [u8], String> {
        match self.take(1)?[0] {
            m @ 0xc4..=0xc6 => {
                let n = self.be(1 << (m - 0xc4))? as usize;
                self.take(n)
            }
            m => Err(format!("expected bytes, got marker 0x{m:02x}")),
        }
    }

    pub fn int(&mut self) -> Result<i64, String> {
        match self.value(0)? {
            Value::Int(i) => Ok(i),
            other => Err(format!("expected an integer, got {other:?}")),
        }
    }

    /// Any one value, generic (a scalar costs no allocation but its string).
    pub fn any(&mut self) -> Result<Value, String> {
        self.value(0)
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.b.len()).ok_or("truncated entry")?;
        let out = &self.b[self.at..end];
        self.at = end;
        Ok(out)
    }

    fn be(&mut self, n: usize) -> Result<u64, String> {
        Ok(self.take(n)?.iter().fold(0u64, |acc, &x| acc << 8 | u64::from(x)))
    }

    fn items(&mut self, n: usize, depth: usize) -> Result<Value, String> {
        // Each item takes at least one byte: a hostile length cannot allocate more than the input.
        let mut items = Vec::with_capacity(n.min(self.b.len() - self.at));
        for _ in 0..n {
            items.push(self.value(depth + 1)?);
        }
        Ok(Value::Array(items))
    }

    fn map(&mut self, n: usize, depth: usize) -> Result<Value, String> {
        let mut entries = Vec::with_capacity(n.min((self.b.len() - self.at) / 2));
        for _ in 0..n {
            let k = self.value(depth + 1)?;
            entries.push((k, self.value(depth + 1)?));
        }
        Ok(Value::Map(entries))
    }

    fn text(&mut self, n: usize) -> Result<Value, String> {
        let raw = self.take(n)?;
        Ok(Value::Str(std::str::from_utf8(raw).map_err(|e| e.to_string())?.to_string()))
    }

    fn value(&mut self, depth: usize) -> Result<Value, String> {
        if depth > 8 {
            return Err("entry nested too deep".into());
        }
        let marker = self.take(1)?[0];
        Ok(match marker {
            0x00..=0x7f => Value::Int(i64::from(marker)),
            0xe0..=0xff => Value::Int(i64::from(marker as i8)),
            0x80..=0x8f => self.map(usize::from(marker & 0x0f), depth)?,
            0x90..=0x9f => self.items(usize::from(marker & 0x0f), depth)?,
            0xa0..=0xbf => self.text(usize::from(marker & 0x1f))?,
            0xc0 => Value::Nil,
            0xc2 => Value::Bool(false),
            0xc3 => Value::Bool(true),
            0xc4..=0xc6 => {
                let n = self.be(1 << (marker - 0xc4))? as usize;
                Value::Bin(self.take(n)?.to_vec())
            }
            0xca => Value::Float(f64::from(f32::from_bits(self.be(4)? as u32))),
            0xcb => Value::Float(f64::from_bits(self.be(8)?)),
            0xcc..=0xcf => {
                let u = self.be(1 << (marker - 0xcc))?;
                i64::try_from(u).map_or(Value::UInt(u), Value::Int)
            }
            0xd0..=0xd3 => {
                let n = 1 << (marker - 0xd0);
                let u = self.be(n)?;
                let shift = 64 - 8 * n as u32;
                Value::Int(((u << shift) as i64) >> shift)
            }
            0xd9..=0xdb => {
                let n = self.be(1 << (marker - 0xd9))? as usize;
                self.text(n)?
            }
            0xdc | 0xdd => {
                let n = self.be(2 << (marker - 0xdc))? as usize;
                self.items(n, depth)?
            }
            0xde | 0xdf => {
                let n = self.be(2 << (marker - 0xde))? as usize;
                self.map(n, depth)?
            }
            other => return Err(format!("unexpected msgpack marker 0x{other:02x}")),
        })
    }
}

fn int(v: &Value) -> Result<i64, String> {
    match v {
        Value::Int(i) => Ok(*i),
        _ => Err(format!("expected an integer, got {v:?}")),
    }
}

fn uint(v: &Value) -> Result<u64, String> {
    match v {
        Value::Int(i) if *i >= 0 => Ok(*i as u64),
        Value::UInt(u) => Ok(*u),
        _ => Err(format!("expected an unsigned integer, got {v:?}")),
    }
}

fn float(v: &Value) -> Result<f64, String> {
    match v {
        Value::Float(f) => Ok(*f),
        Value::Int(i) => Ok(*i as f64),
        _ => Err(format!("expected a number, got {v:?}")),
    }
}

fn string(v: &Value) -> Result<String, String> {
    match v {
        Value::Str(s) => Ok(s.clone()),
        _ => Err(format!("expected a string, got {v:?}")),
    }
}

fn boolean(v: &Value) -> Result<bool, String> {
    match v {
        Value::Bool(b) => Ok(*b),
        _ => Err(format!("expected a boolean, got {v:?}")),
    }
}

fn array(v: &Value) -> Result<&[Value], String> {
    match v {
        Value::Array(items) => Ok(items),
        _ => Err(format!("expected an array, got {v:?}")),
    }
}

/// A time of a state as written: relative to `latest` (nil: none), or as it is in a state written before.
fn time_of(v: &Value, latest: Option<i64>) -> Result<i64, String> {
    match (v, latest) {
        (Value::Nil, Some(_)) => Ok(0),
        (v, Some(latest)) => Ok(latest.wrapping_sub(int(v)?)),
        (v, None) => int(v),
    }
}

fn times_of(v: &Value, latest: Option<i64>) -> Result<Vec<i64>, String> {
    array(v)?.iter().map(|t| time_of(t, latest)).collect()
}

/// A changelog value; Err for bytes no version of the stage wrote.
pub fn decode_entry(data: &[u8]) -> Result<Entry, String> {
    let mut r = Reader { b: data, at: 0 };
    let doc = r.value(0)?;
    let doc = array(&doc)?;
    let relative = match doc.first().map(int).transpose()? {
        Some(FORWARD) if doc.len() >= 3 => {
            return Ok(Entry::Forward { target: string(&doc[1])?, created_ms: int(&doc[2])? });
        }
        Some(STATE_ABSOLUTE) if doc.len() >= 11 => false,
        Some(STATE) if doc.len() >= 13 => true,
        _ => return Err("not a state or forward entry".into()),
    };
    let mut s = CustomerState::new(&string(&doc[1])?);
    s.latest = int(&doc[3])?;
    let latest = relative.then_some(s.latest);
    let t = |v: &Value| time_of(v, latest);
    s.version = t(&doc[2])?;
    s.horizon = t(&doc[4])?;
    for e in array(&doc[5])?.chunks(5) {
        let [k, fneg, fpos, mask, last] = e else { return Err("experience record".into()) };
        let exp = Experience { first_neg: t(fneg)?, first_pos: t(fpos)?, mask: uint(mask)?, last: t(last)? };
        s.exps.push((string(k)?, exp));
    }
    for j in array(&doc[6])? {
        let [jid, jtype, started, last, terminal, channels, dissat, emitted, events] = array(j)? else {
            return Err("journey record".into());
        };
        let Value::Bin(raw) = events else { return Err("journey events".into()) };
        let mut hashes: Vec<u64> =
            raw.chunks_exact(8).map(|c| u64::from_le_bytes(c.try_into().unwrap_or_default())).collect();
        hashes.sort_unstable();
        s.journeys.push(Journey {
            jid: string(jid)?,
            jtype: u8::try_from(int(jtype)?).map_err(|e| e.to_string())?,
            started: t(started)?,
            last: t(last)?,
            terminal: t(terminal)?,
            channels: u32::try_from(int(channels)?).map_err(|e| e.to_string())?,
            dissatisfying: boolean(dissat)?,
            events: hashes,
            emitted: Status::from_index(u8::try_from(int(emitted)?).unwrap_or(0)),
        });
    }
    for o in array(&doc[7])?.chunks(3) {
        let [order, at, amount] = o else { return Err("order record".into()) };
        s.orders.push((string(order)?, (t(at)?, float(amount)?)));
    }
    for c in array(&doc[8])? {
        let [anchor, at, reference, ekey, event_id, channel, journey_id, flagged] = array(c)? else {
            return Err("contact record".into());
        };
        s.contacts.push(Contact {
            anchor: string(anchor)?,
            at: t(at)?,
            reference: string(reference)?,
            experience_key: string(ekey)?,
            event_id: string(event_id)?,
            channel: string(channel)?,
            journey_id: string(journey_id)?,
            flagged: boolean(flagged)?,
        });
    }
    s.alerted = times_of(&doc[9], latest)?;
    s.aliases = array(&doc[10])?.iter().map(string).collect::<Result<_, _>>()?;
    if doc.len() > 11 {
        s.held = times_of(&doc[11], latest)?;
        s.held_at = doc.get(12).map(t).transpose()?.unwrap_or(0);
    }
    if let Some(watches) = doc.get(13) {
        for w in array(watches)?.chunks(4) {
            let [alert_id, at, reported, reported_at] = w else { return Err("watched alert record".into()) };
            let reported = u8::try_from(int(reported)?).map_err(|e| e.to_string())?;
            let (alert_id, at, reported_at) = (string(alert_id)?, t(at)?, t(reported_at)?);
            s.watches.push(Watch { alert_id, at, reported, reported_at });
        }
    }
    Ok(Entry::State(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_take_the_smallest_form_as_msgpack_python_writes_them() {
        let enc = |v: i64| {
            let mut w = Writer(Vec::new());
            w.int(v);
            w.0
        };
        assert_eq!(enc(5), [5]);
        assert_eq!(enc(200), [0xcc, 200]);
        assert_eq!(enc(-1), [0xff]);
        assert_eq!(enc(-33), [0xd0, 0xdf]);
        assert_eq!(enc(1_700_000_000_000), [0xcf, 0, 0, 0x01, 0x8b, 0xcf, 0xe5, 0x68, 0x00]);
        let mut r = Reader { b: &[0xd1, 0xff, 0x00], at: 0 };
        assert_eq!(r.value(0), Ok(Value::Int(-256)));
    }

    #[test]
    fn a_state_round_trips() {
        let mut s = CustomerState::new("C1");
        s.version = 7;
        s.latest = 1_700_000_000_000;
        s.exps.push(("order:O1".into(), Experience { first_neg: 3, first_pos: 0, mask: 1 << 61, last: 9 }));
        let mut j = Journey::new("purchase:O1".into(), 0, 5);
        j.events = vec![1, u64::MAX];
        j.emitted = Status::Open;
        s.journeys.push(j);
        s.orders.push(("O1".into(), (5, 12.5)));
        s.alerted = vec![1, 2];
        s.aliases = vec!["~a".into()];
        s.held = vec![4];
        s.held_at = 99;
        assert_eq!(decode_entry(&encode_state(&s)), Ok(Entry::State(s.clone())));
        s.watches.push(Watch { alert_id: "a-1".into(), at: 2, reported: 4, reported_at: 3 });
        assert_eq!(decode_entry(&encode_state(&s)), Ok(Entry::State(s)));
        assert_eq!(decode_entry(&encode_forward("C2", 5)), Ok(Entry::Forward { target: "C2".into(), created_ms: 5 }));
    }

    #[test]
    fn times_are_written_relative_to_the_latest_and_any_time_round_trips() {
        let mut s = CustomerState::new("C1");
        s.latest = 1_700_000_000_000;
        s.version = 1_700_000_100_000;
        s.exps.push(("order:O1".into(), Experience { first_neg: s.latest, first_pos: 0, mask: 2, last: s.latest }));
        let enc = encode_state(&s);
        // The tag, "C1", the version 100 s after as a negative int32, the latest, no horizon, the experience.
        assert_eq!(enc[..13], [0x9d, 2, 0xa2, b'C', b'1', 0xd2, 0xff, 0xfe, 0x79, 0x60, 0xcf, 0, 0]);
        assert_eq!(enc[19..30], [0xc0, 0x95, 0xa8, b'o', b'r', b'd', b'e', b'r', b':', b'O', b'1']);
        assert_eq!(enc[30..], [0, 0xc0, 2, 0, 0x90, 0x90, 0x90, 0x90, 0x90, 0x90, 0xc0]);
        for (latest, t) in [(i64::MIN, i64::MAX), (i64::MAX, i64::MIN), (0, -1), (5, 5)] {
            s.latest = latest;
            s.version = t;
            s.held = vec![t, 0, latest];
            assert_eq!(decode_entry(&encode_state(&s)), Ok(Entry::State(s.clone())));
        }
    }

    #[test]
    fn states_written_with_absolute_times_read() {
        // [1, key, version, latest, horizon, exps, journeys, orders, contacts, alerted, aliases]: the 11
        // fields of the first states, times as they are.
        let mut w = Writer(Vec::new());
        w.array(11);
        w.int(1);
        w.str("C1");
        w.int(7);
        w.int(1_700_000_000_000);
        w.int(0);
        w.array(5);
        w.str("case:K1");
        for v in [1_699_999_000_000, 0, 4, 1_699_999_500_000] {
            w.int(v);
        }
        w.array(0);
        w.array(3);
        w.str("O1");
        w.int(1_600_000_000_000);
        w.float(3.5);
        w.array(0);
        w.array(1);
        w.int(1_650_000_000_000);
        w.array(0);
        let Ok(Entry::State(s)) = decode_entry(&w.0) else { panic!("no state") };
        assert_eq!((s.version, s.latest, s.horizon), (7, 1_700_000_000_000, 0));
        let exp = Experience { first_neg: 1_699_999_000_000, first_pos: 0, mask: 4, last: 1_699_999_500_000 };
        assert_eq!(s.exps, vec![("case:K1".to_string(), exp)]);
        assert_eq!(s.orders, vec![("O1".to_string(), (1_600_000_000_000, 3.5))]);
        assert_eq!(s.alerted, vec![1_650_000_000_000]);
        assert_eq!(decode_entry(&encode_state(&s)), Ok(Entry::State(s)));
    }

    #[test]
    fn damaged_entries_are_errors_not_panics() {
        let good = encode_state(&CustomerState::new("C1"));
        for cut in 0..good.len() {
            assert!(decode_entry(&good[..cut]).is_err());
        }
        assert!(decode_entry(&[0xdd, 0xff, 0xff, 0xff, 0xff]).is_err());
        assert!(decode_entry(b"\x93\x05\xa1x\x01").is_err());
    }
}
