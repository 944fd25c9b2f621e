//! Rows the core made for a ClickHouse table, held as Rust values (`Rows`): the writer serializes them
//! straight into a Native block (`clickhouse::native_block`), and Python sees them as a sequence of the
//! table's row tuples (`schemas.rows`) only when it asks (tests, a row ClickHouse refused).

use pyo3::exceptions::{PyIndexError, PyTypeError};
use pyo3::prelude::*;
use pyo3::types::{PyList, PySlice, PyTuple};

use crate::record::Scalar;

/// One value of a row, typed as the Python row would hold it.
#[derive(Clone, Debug, PartialEq)]
pub enum Cell {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    Str(Box<str>),
    Strs(Vec<Box<str>>),
}

impl Cell {
    pub fn str(s: &str) -> Cell {
        Cell::Str(s.into())
    }

    pub fn strs<'a>(items: impl IntoIterator<Item = &'a str>) -> Cell {
        Cell::Strs(items.into_iter().map(Into::into).collect())
    }

    pub fn of(s: &Scalar) -> Cell {
        match s {
            Scalar::Null => Cell::Null,
            Scalar::Bool(b) => Cell::Bool(*b),
            Scalar::Int(i) => Cell::Int(*i),
            Scalar::UInt(u) => Cell::UInt(*u),
            Scalar::Float(f) => Cell::Float(*f),
            Scalar::Str(s) => Cell::str(s),
        }
    }

    pub fn to_py<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        Ok(match self {
            Cell::Null => py.None().into_bound(py),
            Cell::Bool(b) => b.into_pyobject(py)?.to_owned().into_any(),
            Cell::Int(i) => i.into_pyobject(py)?.into_any(),
            Cell::UInt(u) => u.into_pyobject(py)?.into_any(),
            Cell::Float(f) => f.into_pyobject(py)?.into_any(),
            Cell::Str(s) => s.as_ref().into_pyobject(py)?.into_any(),
            Cell::Strs(items) => PyList::new(py, items.iter().map(|s| s.as_ref()))?.into_any(),
        })
    }
}

/// Rows of one width, row after row.
#[derive(Clone, Debug, Default)]
pub struct RowBuf {
    pub width: usize,
    pub cells: Vec<Cell>,
}

impl RowBuf {
    pub fn push(&mut self, row: Vec<Cell>) {
        if self.cells.is_empty() {
            self.width = row.len();
        }
        debug_assert_eq!(row.len(), self.width);
        self.cells.extend(row);
    }

    pub fn len(&self) -> usize {
        self.cells.len().checked_div(self.width).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.cells.is_empty()
    }

    pub fn row(&self, n: usize) -> &[Cell] {
        &self.cells[n * self.width..(n + 1) * self.width]
    }
}

/// A table's rows made by the core: a sequence of row tuples to Python, Native columns to ClickHouse.
#[pyclass(module = "cx_core", frozen, sequence)]
pub struct Rows {
    pub buf: RowBuf,
    row_class: Py<PyAny>,
    tuple_new: Py<PyAny>,
}

/// A flush's rows are let go by the writer's thread once stored (`sinks.writer.Batch.clear`, through
/// `free_detached`): inside that call a large buffer's cells are set aside, and freed with the others at
/// its end with the GIL released: one hand-over per flush, not one per buffer (each hand-back waits for the
/// busy agents' thread to let go). Anywhere else a buffer is freed where it is dropped.
impl Drop for Rows {
    fn drop(&mut self) {
        if self.buf.cells.len() >= SET_ASIDE {
            RELEASED.with(|released| {
                if let Some(set) = released.borrow_mut().as_mut() {
                    set.push(std::mem::take(&mut self.buf.cells));
                }
            });
        }
    }
}

/// Fewer cells than this are freed at once.
const SET_ASIDE: usize = 4096;

thread_local! {
    /// The buffers set aside while this thread runs `free_detached` (None outside it).
    static RELEASED: std::cell::RefCell<Option<Vec<Vec<Cell>>>> = const { std::cell::RefCell::new(None) };
}

/// Call `let_go` (which drops rows), then free the large buffers it let go of at once, with the GIL
/// released; returns how many cells that was. `let_go`'s exception, if any, is raised after the freeing.
#[pyfunction]
pub fn free_detached(py: Python<'_>, let_go: &Bound<'_, PyAny>) -> PyResult<usize> {
    let outer = RELEASED.with(|released| released.borrow_mut().replace(Vec::new()));
    let called = let_go.call0();
    let set = RELEASED.with(|released| std::mem::replace(&mut *released.borrow_mut(), outer)).unwrap_or_default();
    let cells = set.iter().map(Vec::len).sum();
    if !set.is_empty() {
        py.detach(move || drop(set));
    }
    called?;
    Ok(cells)
}

impl Rows {
    /// `tuple_new` is `tuple.__new__`, which makes an instance of `row_class` from its fields.
    pub fn new(py: Python<'_>, buf: RowBuf, row_class: &Py<PyAny>, tuple_new: &Py<PyAny>) -> Rows {
        Rows { buf, row_class: row_class.clone_ref(py), tuple_new: tuple_new.clone_ref(py) }
    }

    fn tuple<'py>(&self, py: Python<'py>, n: usize) -> PyResult<Bound<'py, PyAny>> {
        let fields = self.buf.row(n).iter().map(|c| c.to_py(py)).collect::<PyResult<Vec<_>>>()?;
        self.tuple_new.bind(py).call1((self.row_class.bind(py), PyTuple::new(py, fields)?))
    }

    fn subset(&self, py: Python<'_>, picked: impl Iterator<Item = usize>) -> Rows {
        let mut buf = RowBuf { width: self.buf.width, cells: Vec::new() };
        for n in picked {
            buf.cells.extend_from_slice(self.buf.row(n));
        }
        Rows { buf, row_class: self.row_class.clone_ref(py), tuple_new: self.tuple_new.clone_ref(py) }
    }
}

#[pymethods]
impl Rows {
    fn __len__(&self) -> usize {
        self.buf.len()
    }

    /// A row (the table's row tuple), or a slice of the rows as `Rows`.
    fn __getitem__<'py>(&self, py: Python<'py>, index: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        let len = self.buf.len();
        if let Ok(slice) = index.cast::<PySlice>() {
            let ix = slice.indices(len as isize)?;
            let picked = (0..ix.slicelength).map(|k| (ix.start + k as isize * ix.step) as usize);
            return Ok(Bound::new(py, self.subset(py, picked))?.into_any());
        }
        let Ok(mut n) = index.extract::<isize>() else {
            return Err(PyTypeError::new_err("Rows indices are integers or slices"));
        };
        if n < 0 {
            n += len as isize;
        }
        if n < 0 || n as usize >= len {
            return Err(PyIndexError::new_err("Rows index out of range"));
        }
        self.tuple(py, n as usize)
    }

    fn __iter__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.tuples(py)?.into_any().try_iter().map(Bound::into_any)
    }

    /// Every row as the table's row tuple.
    fn tuples<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let rows = (0..self.buf.len()).map(|n| self.tuple(py, n)).collect::<PyResult<Vec<_>>>()?;
        PyList::new(py, rows)
    }

    fn __copy__(&self, py: Python<'_>) -> Rows {
        self.subset(py, 0..self.buf.len())
    }

    fn __deepcopy__(&self, py: Python<'_>, _memo: &Bound<'_, PyAny>) -> Rows {
        self.subset(py, 0..self.buf.len())
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        let name = self.row_class.bind(py).getattr("__name__")?.extract::<String>()?;
        Ok(format!("<cx_core.Rows: {} {name}>", self.buf.len()))
    }
}
