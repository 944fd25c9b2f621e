//! cx-core: the per-touchpoint data plane of cx-journeys, behind a Python API (`cx_core`).
//!
//! The Faust agents call it once per batch; no input-derived value reaches a panic: a malformed
//! touchpoint is a rejection with its Contract 1 reason (docs/contract.md).

pub mod clickhouse;
pub mod codec;
pub mod customer;
pub mod entries;
pub mod ingest;
pub mod journeys;
pub mod json;
pub mod record;
pub mod risk;
pub mod rows;
pub mod schema;
pub mod signals;
pub mod stage;
pub mod text;
pub mod time;

use pyo3::prelude::*;

// The core allocates per row and per state (cells, strings, decoded entries) and frees them a flush later;
// mimalloc's thread-local free lists measured cheaper than glibc's malloc for that (README, throughput).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A Kafka record timestamp, or `now_ms` when it is missing (<= 0) or beyond what a DateTime holds.
#[pyfunction]
fn kafka_time_ms(timestamp_ms: i64, now_ms: i64) -> i64 {
    ingest::kafka_time_ms(timestamp_ms, now_ms)
}

/// A changelog value decoded and encoded again by the core: equal bytes mean the core reads and writes the
/// changelog exactly as the Python stage did (tests/unit/streams/test_core_state.py). ValueError for bytes
/// that are no entry.
#[pyfunction]
fn changelog_roundtrip(py: Python<'_>, data: &[u8]) -> PyResult<Py<pyo3::types::PyBytes>> {
    let entry = codec::decode_entry(data).map_err(pyo3::exceptions::PyValueError::new_err)?;
    let out = match entry {
        codec::Entry::State(state) => codec::encode_state(&state),
        codec::Entry::Forward { target, created_ms } => codec::encode_forward(&target, created_ms),
    };
    Ok(pyo3::types::PyBytes::new(py, &out).unbind())
}

#[pymodule]
fn cx_core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<ingest::Ingest>()?;
    m.add_class::<stage::Stage>()?;
    m.add_class::<rows::Rows>()?;
    m.add_function(wrap_pyfunction!(kafka_time_ms, m)?)?;
    m.add_function(wrap_pyfunction!(clickhouse::native_block, m)?)?;
    m.add_function(wrap_pyfunction!(record::kafka_partition, m)?)?;
    m.add_function(wrap_pyfunction!(text::may_hold_pii, m)?)?;
    m.add_function(wrap_pyfunction!(changelog_roundtrip, m)?)?;
    m.add_function(wrap_pyfunction!(rows::free_detached, m)?)?;
    m.add("IDENTIFIER_TYPES", ingest::IDENTIFIER_TYPES.to_vec())?;
    m.add("MAX_DEPTH", json::MAX_DEPTH)?;
    // What the core checks, for the test that holds it equal to the pydantic contract (schemas/).
    m.add("CHANNELS", schema::CHANNELS.to_vec())?;
    m.add("IDENTITY_FIELDS", schema::IDENTITY_FIELDS.to_vec())?;
    m.add("CONTEXT_FIELDS", schema::CONTEXT_FIELDS.to_vec())?;
    m.add("METRIC_FIELDS", schema::METRIC_FIELDS.to_vec())?;
    m.add("RULE_FIELDS", signals::METRIC_FIELDS.to_vec())?;
    m.add("JOURNEY_TYPES", journeys::JOURNEY_TYPES.to_vec())?;
    m.add("PATTERNS", (schema::RFC3339_PATTERN, schema::EVENT_TYPE_PATTERN, schema::CURRENCY_PATTERN))?;
    m.add("SIZE_LIMITS", (ingest::MAX_EVENT_BYTES, ingest::MAX_BATCH_EVENTS, ingest::MAX_BATCH_BYTES))?;
    m.add("MAX_TIME_MS", time::MAX_TIME_MS)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
