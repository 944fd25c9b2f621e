"""The worker's own metric types: exposed exactly as prometheus_client's would be."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Histogram, generate_latest

from streams.runtime.metrics import LAG_BUCKETS, LagHistogram, PipelineMetrics

_DOC = "From the touchpoint's Kafka timestamp to its row committed in ClickHouse"


def _series(registry: CollectorRegistry) -> dict[str, float]:
    out = {}
    for line in generate_latest(registry).decode().splitlines():
        if line.startswith("lag_") and "_created" not in line:
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


@given(
    st.lists(
        st.tuples(st.integers(0, 10**15), st.lists(st.integers(-5_000, 2_000_000), max_size=60)),
        max_size=6,
    )
)
def test_a_flush_at_a_time_counts_what_one_observation_per_row_would(flushes: list[tuple[int, list[int]]]) -> None:
    """Same buckets, count and sum as Histogram.observe for each row's lag, a negative lag counted as none."""
    ours, theirs = CollectorRegistry(), CollectorRegistry()
    bulk = LagHistogram("lag", _DOC, LAG_BUCKETS, ours)
    plain = Histogram("lag", _DOC, buckets=LAG_BUCKETS, registry=theirs)
    for done_ms, lags_ms in flushes:
        received = [done_ms - lag for lag in lags_ms]
        for r in received:
            plain.observe(max(0.0, (done_ms - r) / 1000))
        bulk.observe_flush(done_ms, received)
    mine, reference = _series(ours), _series(theirs)
    assert mine.keys() == reference.keys()
    for name, value in reference.items():
        assert abs(mine[name] - value) <= 1e-6 * max(1.0, abs(value)), name


def test_the_exposition_names_every_bucket_as_prometheus_client_does() -> None:
    registry = CollectorRegistry()
    LagHistogram("cx_event_to_sink_lag_seconds", _DOC, LAG_BUCKETS, registry).observe_flush(10_000, [9_000, 9_990])
    text = generate_latest(registry).decode()
    assert 'cx_event_to_sink_lag_seconds_bucket{le="0.05"} 1.0' in text
    assert 'cx_event_to_sink_lag_seconds_bucket{le="1.0"} 2.0' in text
    assert 'cx_event_to_sink_lag_seconds_bucket{le="+Inf"} 2.0' in text
    assert "cx_event_to_sink_lag_seconds_count 2.0" in text
    assert "cx_event_to_sink_lag_seconds_sum 1.01" in text
    assert "# TYPE cx_event_to_sink_lag_seconds histogram" in text


def test_a_cached_child_is_the_labelled_series_itself() -> None:
    registry = CollectorRegistry()
    metrics = PipelineMetrics.create(registry)
    child = metrics.child(metrics.signals, "late_delivery")
    assert child is metrics.child(metrics.signals, "late_delivery")
    child.inc(2)
    metrics.signals.labels("late_delivery").inc()
    assert registry.get_sample_value("cx_signals_total", {"signal": "late_delivery"}) == 3
    # Same label values on another metric: another child.
    other = metrics.child(metrics.churn_alerts, "high")
    assert other is not child and other is metrics.churn_alerts.labels("high")
