//! ClickHouse's Native block format for the worker's inserts: the rows of a flush serialized in one pass
//! in the core, where clickhouse-driver wrote them value by value in Python (a quarter of a worker's CPU).
//! The driver still owns the connection and the protocol (sinks/clickhouse.py); this writes the block.
//!
//! Layout: [block info] columns rows (name type [custom-serialization flag] data)*. Data by type:
//! String = LEB128 length + bytes per row; (U)IntN, FloatN = little-endian; DateTime = UInt32 seconds;
//! Enum8 = its Int8 code; Nullable(T) = a UInt8 null map for every row, then T with defaults for the nulls;
//! Array(T) = cumulative UInt64 end offsets, then T over every element.

use pyo3::exceptions::{PyNotImplementedError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyString, PyTuple};

use crate::rows::{Cell, RowBuf, Rows};

/// A column type the core writes; anything else is `Unsupported` and the driver writes that insert.
#[derive(Clone, Debug, PartialEq)]
pub enum ColumnType {
    Str,
    UInt(u8),
    Int(u8),
    Float32,
    Float64,
    DateTime,
    Enum8(Vec<(String, i8)>),
    Nullable(Box<ColumnType>),
    Array(Box<ColumnType>),
}

/// Why a block was not written: a type the core does not write, or a value its column cannot hold.
#[derive(Debug, PartialEq)]
pub enum Fault {
    Unsupported(String),
    Bad(String),
}

pub fn parse_type(text: &str) -> Result<ColumnType, Fault> {
    let t = text.trim();
    let inner = |prefix: &str| t.strip_prefix(prefix).and_then(|r| r.strip_suffix(')'));
    Ok(match t {
        "String" => ColumnType::Str,
        "UInt8" => ColumnType::UInt(1),
        "UInt16" => ColumnType::UInt(2),
        "UInt32" => ColumnType::UInt(4),
        "UInt64" => ColumnType::UInt(8),
        "Int8" => ColumnType::Int(1),
        "Int16" => ColumnType::Int(2),
        "Int32" => ColumnType::Int(4),
        "Int64" => ColumnType::Int(8),
        "Float32" => ColumnType::Float32,
        "Float64" => ColumnType::Float64,
        // A time zone changes how the server shows the seconds, not what is stored.
        _ if t == "DateTime" || inner("DateTime(").is_some() => ColumnType::DateTime,
        _ => {
            if let Some(rest) = inner("Nullable(") {
                ColumnType::Nullable(Box::new(parse_type(rest)?))
            } else if let Some(rest) = inner("Array(") {
                ColumnType::Array(Box::new(parse_type(rest)?))
            } else if let Some(rest) = inner("Enum8(") {
                ColumnType::Enum8(parse_enum(rest).ok_or_else(|| Fault::Unsupported(t.to_owned()))?)
            } else {
                return Err(Fault::Unsupported(t.to_owned()));
            }
        }
    })
}

/// `'a' = 1, 'b\'c' = -2` as (name, code) pairs; None for anything else.
fn parse_enum(text: &str) -> Option<Vec<(String, i8)>> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.next()? != '\'' {
            return None;
        }
        let mut name = String::new();
        loop {
            match chars.next()? {
                '\\' => name.push(chars.next()?),
                '\'' => break,
                c => name.push(c),
            }
        }
        let mut rest = String::new();
        for c in chars.by_ref() {
            if c == ',' {
                break;
            }
            rest.push(c);
        }
        let code = rest.trim().strip_prefix('=')?.trim().parse::<i8>().ok()?;
        out.push((name, code));
        if chars.peek().is_none() {
            return Some(out);
        }
    }
}

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn string(out: &mut Vec<u8>, s: &[u8]) {
    varint(out, s.len() as u64);
    out.extend_from_slice(s);
}

fn bad(what: &str, err: impl std::fmt::Display) -> Fault {
    Fault::Bad(format!("{what}: {err}"))
}

/// A value to write: a Python object, a cell of core-made rows, an element of a cell's list, or the type's
/// default (under a Nullable's null).
#[derive(Clone)]
enum V<'a, 'py> {
    Default,
    Py(Bound<'py, PyAny>),
    Cell(&'a Cell),
    Text(&'a str),
}

impl V<'_, '_> {
    fn is_null(&self) -> bool {
        match self {
            V::Py(v) => v.is_none(),
            V::Cell(c) => matches!(c, Cell::Null),
            _ => false,
        }
    }

    fn kind(&self) -> String {
        match self {
            V::Py(v) => type_name(v),
            V::Cell(c) => match c {
                Cell::Null => "None",
                Cell::Bool(_) => "bool",
                Cell::Int(_) | Cell::UInt(_) => "int",
                Cell::Float(_) => "float",
                Cell::Str(_) => "str",
                Cell::Strs(_) => "list",
            }
            .into(),
            V::Text(_) => "str".into(),
            V::Default => "default".into(),
        }
    }
}

fn int_value(v: &V<'_, '_>, what: &str, min: i128, max: i128) -> Result<i128, Fault> {
    let n = match v {
        V::Default => 0,
        V::Py(v) => return integer(v, what, min, max),
        V::Cell(Cell::Int(i)) => *i as i128,
        V::Cell(Cell::UInt(u)) => *u as i128,
        V::Cell(Cell::Bool(b)) => i128::from(*b),
        other => return Err(bad(what, format!("a {} is no integer", other.kind()))),
    };
    if n < min || n > max {
        return Err(bad(what, format!("out of range {min}..{max}")));
    }
    Ok(n)
}

fn float_value(v: &V<'_, '_>, what: &str) -> Result<f64, Fault> {
    match v {
        V::Default => Ok(0.0),
        V::Py(v) => v.extract::<f64>().map_err(|e| bad(what, e)),
        V::Cell(Cell::Float(f)) => Ok(*f),
        V::Cell(Cell::Int(i)) => Ok(*i as f64),
        V::Cell(Cell::UInt(u)) => Ok(*u as f64),
        V::Cell(Cell::Bool(b)) => Ok(f64::from(u8::from(*b))),
        other => Err(bad(what, format!("a {} is no number", other.kind()))),
    }
}

/// One column's data for `values`.
fn write_values(ty: &ColumnType, values: &[V<'_, '_>], out: &mut Vec<u8>) -> Result<(), Fault> {
    match ty {
        ColumnType::Str => {
            for v in values {
                match v {
                    V::Default => out.push(0),
                    V::Text(s) => string(out, s.as_bytes()),
                    V::Cell(Cell::Str(s)) => string(out, s.as_bytes()),
                    V::Py(v) => {
                        if let Ok(s) = v.cast::<PyString>() {
                            string(out, s.to_str().map_err(|e| bad("String", e))?.as_bytes());
                        } else if let Ok(b) = v.cast::<PyBytes>() {
                            string(out, b.as_bytes());
                        } else {
                            return Err(bad("String", format!("a {} is no string", type_name(v))));
                        }
                    }
                    other => return Err(bad("String", format!("a {} is no string", other.kind()))),
                }
            }
        }
        ColumnType::UInt(width) | ColumnType::Int(width) => {
            let bits = 8 * *width as u32;
            let (name, min, max) = match ty {
                ColumnType::UInt(_) => ("UInt", 0i128, (1i128 << bits) - 1),
                _ => ("Int", -(1i128 << (bits - 1)), (1i128 << (bits - 1)) - 1),
            };
            let what = format!("{name}{bits}");
            for v in values {
                let n = int_value(v, &what, min, max)?;
                out.extend_from_slice(&n.to_le_bytes()[..*width as usize]);
            }
        }
        ColumnType::Float32 => {
            for v in values {
                let f = float_value(v, "Float32")?;
                let g = f as f32;
                if f.is_finite() && !g.is_finite() {
                    return Err(bad("Float32", "out of range"));
                }
                out.extend_from_slice(&g.to_le_bytes());
            }
        }
        ColumnType::Float64 => {
            for v in values {
                out.extend_from_slice(&float_value(v, "Float64")?.to_le_bytes());
            }
        }
        ColumnType::DateTime => {
            for v in values {
                if let V::Py(p) = v {
                    if !p.is_instance_of::<pyo3::types::PyInt>() {
                        // Datetime objects need the driver's time-zone rules: it writes this insert.
                        return Err(Fault::Unsupported(format!("DateTime from a {}", type_name(p))));
                    }
                }
                let n = int_value(v, "DateTime", 0, u32::MAX as i128)?;
                out.extend_from_slice(&(n as u32).to_le_bytes());
            }
        }
        ColumnType::Enum8(names) => {
            for v in values {
                let by_name = |s: &str| {
                    names
                        .iter()
                        .find(|(n, _)| n == s)
                        .map(|(_, c)| *c)
                        .ok_or_else(|| bad("Enum8", "a name the enum does not have"))
                };
                let by_code = |c: i128| {
                    i8::try_from(c)
                        .ok()
                        .filter(|c| names.iter().any(|(_, k)| k == c))
                        .ok_or_else(|| bad("Enum8", "a code the enum does not have"))
                };
                let code = match v {
                    V::Default => names.first().map_or(0, |(_, c)| *c),
                    V::Text(s) => by_name(s)?,
                    V::Cell(Cell::Str(s)) => by_name(s)?,
                    V::Py(p) => match p.cast::<PyString>() {
                        Ok(s) => by_name(s.to_str().map_err(|e| bad("Enum8", e))?)?,
                        Err(_) => by_code(p.extract::<i64>().map_err(|e| bad("Enum8", e))? as i128)?,
                    },
                    other => by_code(int_value(other, "Enum8", i8::MIN as i128, i8::MAX as i128)?)?,
                };
                out.push(code as u8);
            }
        }
        ColumnType::Nullable(inner) => {
            let mut nested = Vec::with_capacity(values.len());
            for v in values {
                let null = v.is_null();
                out.push(u8::from(null));
                nested.push(if null { V::Default } else { v.clone() });
            }
            write_values(inner, &nested, out)?;
        }
        ColumnType::Array(inner) => {
            let mut nested = Vec::new();
            for v in values {
                match v {
                    V::Default => {}
                    V::Cell(Cell::Strs(items)) => nested.extend(items.iter().map(|s| V::Text(s))),
                    V::Py(p) => {
                        if let Ok(list) = p.cast::<PyList>() {
                            nested.extend(list.iter().map(V::Py));
                        } else if let Ok(tuple) = p.cast::<PyTuple>() {
                            nested.extend(tuple.iter().map(V::Py));
                        } else {
                            return Err(bad("Array", format!("a {} is no list", type_name(p))));
                        }
                    }
                    other => return Err(bad("Array", format!("a {} is no list", other.kind()))),
                }
                // Each row's end offset into the elements of every row.
                out.extend_from_slice(&(nested.len() as u64).to_le_bytes());
            }
            write_values(inner, &nested, out)?;
        }
    }
    Ok(())
}

/// An integer within `min..=max` (the bounds are in the message, the value is not: it may be anyone's data).
fn integer(v: &Bound<'_, PyAny>, what: &str, min: i128, max: i128) -> Result<i128, Fault> {
    let n = if let Ok(n) = v.extract::<i64>() {
        n as i128
    } else if let Ok(n) = v.extract::<u64>() {
        n as i128
    } else if v.is_instance_of::<pyo3::types::PyInt>() {
        return Err(bad(what, format!("out of range {min}..{max}")));
    } else {
        return Err(bad(what, format!("a {} is no integer", type_name(v))));
    };
    if n < min || n > max {
        return Err(bad(what, format!("out of range {min}..{max}")));
    }
    Ok(n)
}

fn type_name(v: &Bound<'_, PyAny>) -> String {
    v.get_type().name().map(|n| n.to_string()).unwrap_or_else(|_| "value".to_owned())
}

/// The block of `rows` (tuples in `columns` order) followed by the rows of `chunks` (made by the core), for
/// `columns` (name, ClickHouse type), as the native protocol sends it when `block_info` /
/// `custom_serialization` (server revisions 51903 / 54454), or the standalone Native format without both.
pub fn block(
    rows: &[Bound<'_, PyTuple>],
    chunks: &[&RowBuf],
    columns: &[(String, String)],
    block_info: bool,
    custom_serialization: bool,
) -> Result<Vec<u8>, Fault> {
    let types = columns.iter().map(|(_, t)| parse_type(t)).collect::<Result<Vec<_>, _>>()?;
    for (n, row) in rows.iter().enumerate() {
        if row.len() != columns.len() {
            return Err(Fault::Bad(format!("row {n} has {} values for {} columns", row.len(), columns.len())));
        }
    }
    for chunk in chunks {
        if !chunk.is_empty() && chunk.width != columns.len() {
            return Err(Fault::Bad(format!("rows of {} values for {} columns", chunk.width, columns.len())));
        }
    }
    let total = rows.len() + chunks.iter().map(|c| c.len()).sum::<usize>();
    let mut out = Vec::with_capacity(64 + total * columns.len() * 12);
    if block_info {
        // field 1 is_overflows = 0, field 2 bucket_num = -1, end of fields
        out.extend_from_slice(&[1, 0, 2, 0xff, 0xff, 0xff, 0xff, 0]);
    }
    varint(&mut out, columns.len() as u64);
    varint(&mut out, total as u64);
    let mut values: Vec<V<'_, '_>> = Vec::with_capacity(total);
    for (c, ((name, type_text), ty)) in columns.iter().zip(&types).enumerate() {
        string(&mut out, name.as_bytes());
        string(&mut out, type_text.as_bytes());
        if custom_serialization {
            out.push(0);
        }
        values.clear();
        // Width checked above: every row has column c.
        values.extend(rows.iter().map(|row| row.get_item(c).map_or(V::Default, V::Py)));
        for chunk in chunks {
            values.extend((0..chunk.len()).map(|n| V::Cell(&chunk.row(n)[c])));
        }
        write_values(ty, &values, &mut out).map_err(|f| match f {
            Fault::Bad(why) => Fault::Bad(format!("column {name} ({type_text}): {why}")),
            other => other,
        })?;
    }
    Ok(out)
}

/// `native_block(rows, columns, *, block_info, custom_serialization, chunks=[]) -> bytes`: ValueError for a
/// value its column cannot hold (or a row of the wrong width), TypeError for rows that are no tuples,
/// NotImplementedError for a type the core does not write (the caller lets the driver write it).
#[pyfunction]
#[pyo3(signature = (rows, columns, *, block_info, custom_serialization, chunks = None))]
pub fn native_block(
    py: Python<'_>,
    rows: &Bound<'_, PyList>,
    columns: Vec<(String, String)>,
    block_info: bool,
    custom_serialization: bool,
    chunks: Option<Vec<PyRef<'_, Rows>>>,
) -> PyResult<Py<PyBytes>> {
    let tuples = rows
        .iter()
        .map(|r| r.cast_into::<PyTuple>().map_err(|_| PyTypeError::new_err("native_block takes rows as tuples")))
        .collect::<PyResult<Vec<_>>>()?;
    let chunks = chunks.unwrap_or_default();
    let bufs: Vec<&RowBuf> = chunks.iter().map(|c| &c.buf).collect();
    match block(&tuples, &bufs, &columns, block_info, custom_serialization) {
        Ok(bytes) => Ok(PyBytes::new(py, &bytes).unbind()),
        Err(Fault::Unsupported(what)) => Err(PyNotImplementedError::new_err(format!("the core does not write {what}"))),
        Err(Fault::Bad(why)) => Err(PyValueError::new_err(why)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_parse_and_unknown_ones_are_unsupported() {
        assert_eq!(parse_type("Nullable(UInt16)").unwrap(), ColumnType::Nullable(Box::new(ColumnType::UInt(2))));
        assert_eq!(parse_type("Array(String)").unwrap(), ColumnType::Array(Box::new(ColumnType::Str)));
        assert_eq!(parse_type("DateTime('UTC')").unwrap(), ColumnType::DateTime);
        assert_eq!(
            parse_type("Enum8('none' = 0, 'it\\'s' = -3)").unwrap(),
            ColumnType::Enum8(vec![("none".into(), 0), ("it's".into(), -3)])
        );
        for t in ["LowCardinality(String)", "Date", "Decimal(9, 2)", "Enum8('a' = 300)", "Map(String, UInt8)"] {
            assert!(matches!(parse_type(t), Err(Fault::Unsupported(_))), "{t}");
        }
    }

    #[test]
    fn varints_are_leb128() {
        let mut out = Vec::new();
        for v in [0u64, 127, 128, 300, u64::MAX] {
            varint(&mut out, v);
        }
        assert_eq!(out[..5], [0, 127, 0x80, 1, 0xac]);
        assert_eq!(out.len(), 1 + 1 + 2 + 2 + 10);
    }
}
