//! JSON in, exactly as orjson reads it, into values that borrow from the message: the whole input
//! UTF-8 with no byte order mark, at most 1024 levels of nesting, integers in the 64-bit ranges
//! (larger ones and anything with a fraction or exponent as doubles, `-0` as the integer 0), a
//! double too large for a double refused, duplicate keys keeping their first place and last value.
//! The parser is iterative, so no nesting depth reaches the thread's stack; values go to Python
//! only for what is rejected.

use std::borrow::Cow;
use std::collections::HashMap;

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

/// orjson's nesting limit: 1024 levels read, 1025 refused.
pub const MAX_DEPTH: usize = 1024;

/// One JSON value; strings borrow from the input unless they hold escapes.
#[derive(Clone, Debug, PartialEq)]
pub enum Json<'a> {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    Str(Cow<'a, str>),
    Array(Vec<Json<'a>>),
    Object(Object<'a>),
}

/// An object's members in first-appearance order (a touchpoint has a handful: a scan beats hashing).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Object<'a> {
    entries: Vec<(Cow<'a, str>, Json<'a>)>,
}

impl<'a> Object<'a> {
    pub fn get(&self, key: &str) -> Option<&Json<'a>> {
        self.entries.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    pub fn contains_key(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &Json<'a>)> {
        self.entries.iter().map(|(k, v)| (k.as_ref(), v))
    }

    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|(k, _)| k.as_ref())
    }

    pub fn values(&self) -> impl Iterator<Item = &Json<'a>> {
        self.entries.iter().map(|(_, v)| v)
    }

    pub fn into_values(self) -> impl Iterator<Item = Json<'a>> {
        self.entries.into_iter().map(|(_, v)| v)
    }
}

impl<'a> Json<'a> {
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Json::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_object(&self) -> Option<&Object<'a>> {
        match self {
            Json::Object(o) => Some(o),
            _ => None,
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self, Json::Null)
    }
}

/// Members of an object being read: duplicates found by a scan while few, by an index beyond.
#[derive(Default)]
struct Members<'a> {
    entries: Vec<(Cow<'a, str>, Json<'a>)>,
    index: HashMap<Cow<'a, str>, usize>,
}

impl<'a> Members<'a> {
    const SCAN: usize = 16;

    fn insert(&mut self, key: Cow<'a, str>, value: Json<'a>) {
        let found = if self.entries.len() <= Self::SCAN {
            self.entries.iter().position(|(k, _)| *k == key)
        } else {
            if self.index.is_empty() {
                self.index = self.entries.iter().enumerate().map(|(i, (k, _))| (k.clone(), i)).collect();
            }
            self.index.get(&key).copied()
        };
        match found {
            Some(at) => self.entries[at].1 = value,
            None => {
                if !self.index.is_empty() {
                    self.index.insert(key.clone(), self.entries.len());
                }
                self.entries.push((key, value));
            }
        }
    }
}

enum Frame<'a> {
    Array(Vec<Json<'a>>),
    Object(Members<'a>, Option<Cow<'a, str>>),
}

struct Parser<'a> {
    text: &'a str,
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Parser<'a> {
    fn error<T>(&self, what: &str) -> Result<T, String> {
        Err(format!("{what} at byte {}", self.at))
    }

    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.bytes.get(self.at) {
            self.at += 1;
        }
    }

    fn literal(&mut self, word: &[u8], value: Json<'a>) -> Result<Json<'a>, String> {
        if self.bytes[self.at..].starts_with(word) {
            self.at += word.len();
            Ok(value)
        } else {
            self.error("invalid literal")
        }
    }

    fn number(&mut self) -> Result<Json<'a>, String> {
        let start = self.at;
        let digits = |p: &mut Self| {
            let from = p.at;
            while p.bytes.get(p.at).is_some_and(u8::is_ascii_digit) {
                p.at += 1;
            }
            p.at - from
        };
        if self.bytes.get(self.at) == Some(&b'-') {
            self.at += 1;
        }
        match self.bytes.get(self.at) {
            Some(b'0') => self.at += 1,
            Some(b'1'..=b'9') => {
                digits(self);
            }
            _ => return self.error("invalid number"),
        }
        let mut integer = true;
        if self.bytes.get(self.at) == Some(&b'.') {
            self.at += 1;
            integer = false;
            if digits(self) == 0 {
                return self.error("invalid number");
            }
        }
        if let Some(b'e' | b'E') = self.bytes.get(self.at) {
            self.at += 1;
            integer = false;
            if let Some(b'+' | b'-') = self.bytes.get(self.at) {
                self.at += 1;
            }
            if digits(self) == 0 {
                return self.error("invalid number");
            }
        }
        let text = &self.text[start..self.at];
        if integer {
            if let Ok(i) = text.parse::<i64>() {
                return Ok(Json::Int(i));
            }
            if let Ok(u) = text.parse::<u64>() {
                return Ok(Json::UInt(u));
            }
        }
        match text.parse::<f64>() {
            Ok(f) if f.is_finite() => Ok(Json::Float(f)),
            _ => self.error("number is infinity when parsed as double"),
        }
    }

    fn hex4(&mut self) -> Result<u32, String> {
        let Some(chunk) = self.bytes.get(self.at..self.at + 4) else { return self.error("invalid escape") };
        let mut n = 0u32;
        for &c in chunk {
            let d = match c {
                b'0'..=b'9' => c - b'0',
                b'a'..=b'f' => c - b'a' + 10,
                b'A'..=b'F' => c - b'A' + 10,
                _ => return self.error("invalid escape"),
            };
            n = n * 16 + u32::from(d);
        }
        self.at += 4;
        Ok(n)
    }

    fn string(&mut self) -> Result<Cow<'a, str>, String> {
        self.at += 1; // the opening quote
        let start = self.at;
        // The common case: no escape, borrowed as is.
        loop {
            match self.bytes.get(self.at) {
                None => return self.error("unterminated string"),
                Some(b'"') => {
                    let s = &self.text[start..self.at];
                    self.at += 1;
                    return Ok(Cow::Borrowed(s));
                }
                Some(b'\\') => break,
                Some(0..=0x1f) => return self.error("control character in string"),
                Some(_) => self.at += 1,
            }
        }
        let mut out = String::from(&self.text[start..self.at]);
        loop {
            match self.bytes.get(self.at) {
                None => return self.error("unterminated string"),
                Some(b'"') => {
                    self.at += 1;
                    return Ok(Cow::Owned(out));
                }
                Some(b'\\') => {
                    self.at += 1;
                    let Some(&c) = self.bytes.get(self.at) else { return self.error("unterminated string") };
                    self.at += 1;
                    match c {
                        b'"' => out.push('"'),
                        b'\\' => out.push('\\'),
                        b'/' => out.push('/'),
                        b'b' => out.push('\x08'),
                        b'f' => out.push('\x0c'),
                        b'n' => out.push('\n'),
                        b'r' => out.push('\r'),
                        b't' => out.push('\t'),
                        b'u' => {
                            let first = self.hex4()?;
                            let code = match first {
                                0xD800..=0xDBFF => {
                                    if self.bytes.get(self.at..self.at + 2) != Some(b"\\u") {
                                        return self.error("no low surrogate in string");
                                    }
                                    self.at += 2;
                                    let second = self.hex4()?;
                                    if !(0xDC00..=0xDFFF).contains(&second) {
                                        return self.error("invalid low surrogate in string");
                                    }
                                    0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00)
                                }
                                0xDC00..=0xDFFF => return self.error("lone low surrogate in string"),
                                _ => first,
                            };
                            match char::from_u32(code) {
                                Some(ch) => out.push(ch),
                                None => return self.error("invalid escape"),
                            }
                        }
                        _ => return self.error("invalid escape"),
                    }
                }
                Some(0..=0x1f) => return self.error("control character in string"),
                Some(_) => {
                    // Copy the run up to the next quote, backslash or control character.
                    let from = self.at;
                    while self.bytes.get(self.at).is_some_and(|&b| b != b'"' && b != b'\\' && b >= 0x20) {
                        self.at += 1;
                    }
                    out.push_str(&self.text[from..self.at]);
                }
            }
        }
    }

    /// A scalar, or the opening of a container pushed onto `stack`.
    fn value(&mut self, stack: &mut Vec<Frame<'a>>) -> Result<Option<Json<'a>>, String> {
        self.skip_ws();
        let Some(&c) = self.bytes.get(self.at) else { return self.error("unexpected end of input") };
        let scalar = match c {
            b'{' | b'[' => {
                if stack.len() >= MAX_DEPTH {
                    return self.error("depth limit exceeded");
                }
                self.at += 1;
                stack.push(if c == b'{' { Frame::Object(Members::default(), None) } else { Frame::Array(Vec::new()) });
                return Ok(None);
            }
            b'"' => Json::Str(self.string()?),
            b't' => self.literal(b"true", Json::Bool(true))?,
            b'f' => self.literal(b"false", Json::Bool(false))?,
            b'n' => self.literal(b"null", Json::Null)?,
            b'-' | b'0'..=b'9' => self.number()?,
            _ => return self.error("unexpected character"),
        };
        Ok(Some(scalar))
    }

    fn document(&mut self) -> Result<Json<'a>, String> {
        let mut stack: Vec<Frame<'a>> = Vec::new();
        let mut next = self.value(&mut stack)?;
        loop {
            let done = match next {
                Some(value) => value,
                None => {
                    // A container just opened: it may close at once.
                    self.skip_ws();
                    if self.closes(&stack) {
                        self.at += 1;
                        self.close(&mut stack)
                    } else {
                        next = self.member(&mut stack)?;
                        continue;
                    }
                }
            };
            match stack.last_mut() {
                None => {
                    self.skip_ws();
                    if self.at != self.bytes.len() {
                        return self.error("trailing characters");
                    }
                    return Ok(done);
                }
                Some(Frame::Array(items)) => items.push(done),
                Some(Frame::Object(members, key)) => match key.take() {
                    Some(k) => members.insert(k, done),
                    None => return self.error("object key expected"),
                },
            }
            self.skip_ws();
            if self.bytes.get(self.at) == Some(&b',') {
                self.at += 1;
                next = self.member(&mut stack)?;
            } else if self.closes(&stack) {
                self.at += 1;
                next = Some(self.close(&mut stack));
            } else {
                return self.error("expected ',' or a closing bracket");
            }
        }
    }

    /// Whether the next byte closes the innermost container.
    fn closes(&self, stack: &[Frame<'a>]) -> bool {
        matches!(
            (stack.last(), self.bytes.get(self.at)),
            (Some(Frame::Array(_)), Some(b']')) | (Some(Frame::Object(..)), Some(b'}'))
        )
    }

    /// The next element of an array, or the next `"key": value` of an object.
    fn member(&mut self, stack: &mut Vec<Frame<'a>>) -> Result<Option<Json<'a>>, String> {
        if let Some(Frame::Object(_, key)) = stack.last_mut() {
            self.skip_ws();
            if self.bytes.get(self.at) != Some(&b'"') {
                return self.error("object key expected");
            }
            let k = self.string()?;
            self.skip_ws();
            if self.bytes.get(self.at) != Some(&b':') {
                return self.error("':' expected");
            }
            self.at += 1;
            *key = Some(k);
        }
        self.value(stack)
    }

    fn close(&mut self, stack: &mut Vec<Frame<'a>>) -> Json<'a> {
        match stack.pop() {
            Some(Frame::Array(items)) => Json::Array(items),
            Some(Frame::Object(members, _)) => Json::Object(Object { entries: members.entries }),
            None => Json::Null, // unreachable: close follows a push
        }
    }
}

/// One JSON document; the error is the dead letter's detail.
pub fn parse(raw: &[u8]) -> Result<Json<'_>, String> {
    let text = std::str::from_utf8(raw).map_err(|e| format!("not valid UTF-8: {e}"))?;
    if text.starts_with('\u{feff}') {
        return Err("UTF-8 byte order mark (BOM) is not supported".into());
    }
    Parser { text, bytes: raw, at: 0 }.document()
}

/// The Python value orjson would have returned.
pub fn to_py<'py>(py: Python<'py>, value: &Json<'_>) -> PyResult<Bound<'py, PyAny>> {
    stacker::maybe_grow(64 * 1024, 1024 * 1024, || convert(py, value))
}

fn convert<'py>(py: Python<'py>, value: &Json<'_>) -> PyResult<Bound<'py, PyAny>> {
    Ok(match value {
        Json::Null => py.None().into_bound(py),
        Json::Bool(b) => b.into_pyobject(py)?.to_owned().into_any(),
        Json::Int(i) => i.into_pyobject(py)?.into_any(),
        Json::UInt(u) => u.into_pyobject(py)?.into_any(),
        Json::Float(f) => f.into_pyobject(py)?.into_any(),
        Json::Str(s) => s.as_ref().into_pyobject(py)?.into_any(),
        Json::Array(items) => {
            let list = PyList::empty(py);
            for item in items {
                list.append(to_py(py, item)?)?;
            }
            list.into_any()
        }
        Json::Object(map) => {
            let dict = PyDict::new(py);
            for (k, v) in map.iter() {
                dict.set_item(k, to_py(py, v)?)?;
            }
            dict.into_any()
        }
    })
}

/// The length of a value's compact encoding as orjson writes it, doubles left out, and how many doubles
/// it holds: orjson writes each its own way (`1e+16`, `1000000000000000.0`) in at most 24 bytes.
pub fn encoded_len(value: &Json<'_>) -> (usize, usize) {
    fn walk(v: &Json<'_>, floats: &mut usize) -> usize {
        stacker::maybe_grow(32 * 1024, 1024 * 1024, || match v {
            Json::Null | Json::Bool(true) => 4,
            Json::Bool(false) => 5,
            Json::Int(i) => usize::from(*i < 0) + digits(i.unsigned_abs()),
            Json::UInt(u) => digits(*u),
            Json::Float(_) => {
                *floats += 1;
                0
            }
            Json::Str(s) => string_len(s),
            Json::Array(items) => {
                2 + items.len().saturating_sub(1) + items.iter().map(|i| walk(i, floats)).sum::<usize>()
            }
            Json::Object(map) => {
                2 + map.len().saturating_sub(1)
                    + map.iter().map(|(k, v)| string_len(k) + 1 + walk(v, floats)).sum::<usize>()
            }
        })
    }
    let mut floats = 0;
    let len = walk(value, &mut floats);
    (len, floats)
}

fn digits(mut n: u64) -> usize {
    let mut count = 1;
    while n >= 10 {
        n /= 10;
        count += 1;
    }
    count
}

/// A string's encoded length: quotes, and the escapes orjson writes (`\"`, `\\`, `\n`-style or `\u00XX`).
fn string_len(s: &str) -> usize {
    2 + s
        .bytes()
        .map(|b| match b {
            b'"' | b'\\' | b'\x08' | b'\x0c' | b'\n' | b'\r' | b'\t' => 2,
            0..=0x1f => 6,
            _ => 1,
        })
        .sum::<usize>()
}

/// `kind_of` of the contract's details: what a value is, in words.
pub fn kind_of(value: &Json<'_>) -> &'static str {
    match value {
        Json::Array(_) => "an array",
        Json::Str(_) => "a string",
        Json::Bool(_) => "a boolean",
        Json::Null => "null",
        _ => "a number",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depth_limit_is_orjsons() {
        let ok = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert!(parse(ok.as_bytes()).is_ok());
        let deep = format!("{}{}", "[".repeat(MAX_DEPTH + 1), "]".repeat(MAX_DEPTH + 1));
        assert!(parse(deep.as_bytes()).unwrap_err().contains("depth limit"));
        let objects = format!("{}1{}", "{\"a\":".repeat(MAX_DEPTH), "}".repeat(MAX_DEPTH));
        assert!(parse(objects.as_bytes()).is_ok());
        // Brackets inside strings do not nest.
        let quoted = format!("[\"{}\"]", "[".repeat(5000));
        assert!(parse(quoted.as_bytes()).is_ok());
    }

    #[test]
    fn numbers_as_orjson_reads_them() {
        fn read(raw: &[u8]) -> Json<'_> {
            parse(raw).unwrap()
        }
        assert_eq!(read(b"18446744073709551615"), Json::UInt(u64::MAX));
        assert_eq!(read(b"18446744073709551616"), Json::Float(18446744073709551616.0));
        assert_eq!(read(b"-9223372036854775809"), Json::Float(-9223372036854775808.0));
        assert_eq!(read(b"-0"), Json::Int(0));
        assert!(matches!(read(b"-0.0"), Json::Float(f) if f == 0.0 && f.is_sign_negative()));
        assert_eq!(read(b"1e2"), Json::Float(100.0));
        assert_eq!(read(b"1E-400"), Json::Float(0.0));
        assert!(parse(b"1e400").is_err());
        assert!(parse(b"[1, {\"a\": -1e309}]").is_err());
    }

    #[test]
    fn refuses_what_orjson_refuses() {
        for bad in [
            &b"\xef\xbb\xbf{}"[..],
            b"",
            b" ",
            b"{} x",
            b"\"\\ud800\"",
            b"\"\\udc00\"",
            b"\"\\ud800\\u0041\"",
            b"[1,]",
            b"{\"a\":1,}",
            b"{\"a\" 1}",
            b"{1:1}",
            b"NaN",
            b"01",
            b"1.",
            b".5",
            b"-",
            b"1e",
            b"\"\xff\"",
            b"\"a\x01\"",
            b"\"\\x\"",
            b"[",
            b"]",
            b"{\"a\":}",
            b"[1 2]",
            b"tru",
            b"nul",
        ] {
            assert!(parse(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn reads_what_orjson_reads() {
        let v = parse(b" {\"a\" : [ 1 , {} , [] , \"x\\u00e9\\ud83d\\ude00\\n\" ] , \"b\":{\"c\":null}} ").unwrap();
        let a = v.as_object().unwrap().get("a").unwrap();
        assert_eq!(
            a,
            &Json::Array(vec![
                Json::Int(1),
                Json::Object(Object::default()),
                Json::Array(vec![]),
                Json::Str("xé😀\n".into())
            ])
        );
        assert_eq!(parse(b"[]").unwrap(), Json::Array(vec![]));
        assert_eq!(parse(b"{}").unwrap(), Json::Object(Object::default()));
        assert_eq!(
            parse(b"[[],[[]]]").unwrap(),
            Json::Array(vec![Json::Array(vec![]), Json::Array(vec![Json::Array(vec![])])])
        );
    }

    #[test]
    fn duplicate_keys_keep_first_place_last_value() {
        let v = parse(br#"{"a":1,"b":2,"a":3}"#).unwrap();
        let got: Vec<_> = v.as_object().unwrap().iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
        assert_eq!(got, vec![("a".into(), Json::Int(3)), ("b".into(), Json::Int(2))]);
        let many: String = (0..40).map(|i| format!("\"k{}\":{i},", i % 20)).collect();
        let text = format!("{{{}\"k0\":99}}", many);
        let v = parse(text.as_bytes()).unwrap();
        let o = v.as_object().unwrap();
        assert_eq!((o.len(), o.get("k0"), o.get("k19")), (20, Some(&Json::Int(99)), Some(&Json::Int(39))));
        assert_eq!(o.keys().next(), Some("k0"));
    }

    #[test]
    fn encoded_len_counts_escapes() {
        let raw = br#"{"a":"x\n\u0001\"","b":[1,true,null,-5,18446744073709551615,-9223372036854775808]}"#;
        assert_eq!(encoded_len(&parse(raw).unwrap()), (raw.len(), 0));
        assert_eq!(encoded_len(&parse(b"[1.5,2e300]").unwrap()), (3, 2));
    }
}
