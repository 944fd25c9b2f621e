"""Every Prometheus metric of the worker, built in one place from a registry passed in."""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import HistogramMetricFamily
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from schemas.records import RejectReason
from schemas.rows import OUTCOMES, ROWS_BY_TABLE

M = TypeVar("M", Counter, Gauge, Histogram)

__all__ = ["LAG_BUCKETS", "LagHistogram", "PipelineMetrics"]

LAG_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 900.0)
_JOURNEY_BUCKETS = (
    60,
    300,
    1800,
    3600,
    6 * 3600,
    86400,
    3 * 86400,
    7 * 86400,
    14 * 86400,
    30 * 86400,
)


class LagHistogram(Collector):
    """A histogram of event-to-sink lags, observed a flush at a time.

    Every touchpoint of a flush is stored at the same moment, so the lags of its rows are that
    moment minus their receive times: sorting the receive times once and cutting them at each
    bucket's bound gives the counts (`Histogram.observe` per touchpoint cost a batched worker 4%).
    Exposed exactly as a prometheus_client Histogram is (`_bucket{le}`, `_sum`, `_count`). The
    flusher and /metrics share the event loop, so no lock is needed.
    """

    def __init__(self, name: str, documentation: str, buckets: tuple[float, ...], registry: CollectorRegistry) -> None:
        self.name, self.documentation = name, documentation
        self.buckets = tuple(sorted(buckets))
        self._bounds_ms = [round(b * 1000) for b in self.buckets]
        self._cumulative = [0] * len(self.buckets)  # rows with a lag <= each bound
        self._count = 0
        self._sum = 0.0
        registry.register(self)

    def observe_flush(self, done_ms: int, received_ms: list[int]) -> None:
        """Rows received at `received_ms` (epoch ms, sorted here in place) stored at `done_ms`.

        A receive time after `done_ms` (a producer's clock ahead of ours) counts as no lag.
        """
        if not received_ms:
            return
        received_ms.sort()
        n = len(received_ms)
        for i, bound in enumerate(self._bounds_ms):
            self._cumulative[i] += n - bisect_left(received_ms, done_ms - bound)
        late = bisect_right(received_ms, done_ms)  # the rows with a positive lag
        self._sum += (late * done_ms - sum(received_ms[:late])) / 1000
        self._count += n

    def collect(self) -> Iterator[HistogramMetricFamily]:
        bounds = (floatToGoString(b) for b in self.buckets)  # type: ignore[no-untyped-call]  # as Histogram writes them
        buckets = [(le, c) for le, c in zip(bounds, self._cumulative, strict=True)]
        buckets.append(("+Inf", self._count))
        yield HistogramMetricFamily(self.name, self.documentation, buckets=buckets, sum_value=self._sum)


@dataclass(frozen=True)
class PipelineMetrics:
    """The `cx_*` metrics; labels are bounded sets, never customer or event ids."""

    touchpoints: Counter
    rejections: Counter
    kafka_timestamps_replaced: Counter
    pii_hashed: Counter
    sink_rejected_rows: Counter
    duplicates: Counter
    signals: Counter
    churn_alerts: Counter
    alert_actions: Counter
    alert_outcomes: Counter
    sink_rows: Counter
    sink_batch_seconds: Histogram
    flush_seconds: Histogram
    sink_errors: Counter
    event_to_sink_lag: LagHistogram
    journeys_opened: Counter
    journeys_closed: Counter
    journey_duration: Histogram
    identity_links: Counter
    identity_merges: Counter
    identity_conflicts: Counter
    erasures: Counter
    state_customers: Gauge
    alerts_held: Gauge
    state_bytes: Gauge
    watermark_lag: Gauge
    flush_pending_rows: Gauge
    assigned_partitions: Gauge
    changelog_records: Counter
    # Not a field: every field is a metric (tests/unit/deploy/test_prometheus_rules.py reads them).
    _children: ClassVar[dict[tuple[int, tuple[str, ...]], Any]]

    def __post_init__(self) -> None:
        object.__setattr__(self, "_children", {})

    def child(self, metric: M, *labels: str) -> M:
        """`metric.labels(*labels)`, looked up once: `labels()` validates and takes a lock on every call, and
        the agents call it per signal, journey and alert of a batch. Label values are bounded sets (the
        class doc), so this cache is too."""
        key = (id(metric), labels)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = metric.labels(*labels)
        return found  # type: ignore[no-any-return]

    @classmethod
    def create(cls, registry: CollectorRegistry) -> PipelineMetrics:
        metrics = cls._build(registry)
        # Series that alerts use `increase()` on exist at 0 from the start, so a first event counts.
        metrics.churn_alerts.labels("high")  # alerts are raised on crossing into high only
        for outcome in OUTCOMES:
            metrics.alert_outcomes.labels(outcome)
        for reason in RejectReason:
            metrics.rejections.labels(reason.value)
        for table in ROWS_BY_TABLE:
            metrics.sink_rejected_rows.labels(table)
        return metrics

    @classmethod
    def _build(cls, registry: CollectorRegistry) -> PipelineMetrics:
        r = registry
        return cls(
            touchpoints=Counter("cx_touchpoints", "Touchpoints accepted by ingest", ["channel"], registry=r),
            rejections=Counter(
                "cx_rejections", "Touchpoints rejected to the dead-letter topic", ["reason"], registry=r
            ),
            kafka_timestamps_replaced=Counter(
                "cx_kafka_timestamps_replaced",
                "Kafka record timestamps outside what a DateTime column holds, replaced by the receive time",
                registry=r,
            ),
            pii_hashed=Counter(
                "cx_pii_ids_hashed",
                "Id fields that held a phone number or e-mail address, stored as its keyed hash",
                ["field"],
                registry=r,
            ),
            sink_rejected_rows=Counter(
                "cx_sink_rejected_rows",
                "Rows ClickHouse refused for good (not an outage), isolated and stored as dead letters",
                ["table"],
                registry=r,
            ),
            duplicates=Counter("cx_duplicates", "Touchpoints whose event_id was already applied", registry=r),
            signals=Counter("cx_signals", "Experience signals raised", ["signal"], registry=r),
            churn_alerts=Counter("cx_churn_alerts", "Churn-risk alerts emitted", ["level"], registry=r),
            alert_outcomes=Counter(
                "cx_alert_outcomes",
                "Churn alerts whose outcome was decided (recovered, relapsed, lost, pending)",
                ["outcome"],
                registry=r,
            ),
            alert_actions=Counter(
                "cx_churn_alert_actions",
                "Recovery actions the playbook recommended, one per alert",
                ["action"],
                registry=r,
            ),
            sink_rows=Counter("cx_sink_rows", "Rows inserted into ClickHouse", ["table"], registry=r),
            sink_batch_seconds=Histogram(
                "cx_sink_batch_seconds",
                "Duration of one ClickHouse insert",
                ["table"],
                buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
                registry=r,
            ),
            flush_seconds=Histogram(
                "cx_flush_seconds",
                "Duration of one flush: every table's insert, then the Kafka writes, then the acks",
                buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.5, 5.0, 10.0, 30.0),
                registry=r,
            ),
            sink_errors=Counter("cx_sink_errors", "Failed ClickHouse inserts (retried)", ["table"], registry=r),
            event_to_sink_lag=LagHistogram(
                "cx_event_to_sink_lag_seconds",
                "From the touchpoint's Kafka timestamp to its row committed in ClickHouse",
                LAG_BUCKETS,
                r,
            ),
            journeys_opened=Counter("cx_journeys_opened", "Journeys opened", ["journey_type"], registry=r),
            journeys_closed=Counter("cx_journeys_closed", "Journeys closed", ["journey_type", "status"], registry=r),
            journey_duration=Histogram(
                "cx_journey_duration_seconds",
                "Journey length, first touchpoint to end",
                ["journey_type"],
                buckets=_JOURNEY_BUCKETS,
                registry=r,
            ),
            identity_links=Counter("cx_identity_links", "Identifier mapping changes published", registry=r),
            identity_merges=Counter("cx_identity_merges", "Keys merged into another key", registry=r),
            identity_conflicts=Counter(
                "cx_identity_conflicts",
                "Links refused: a second customer, or over the identifier limit",
                ["reason"],
                registry=r,
            ),
            erasures=Counter(
                "cx_erasures",
                "`cxj forget` work done: requests unlinked by the arbiter, state entries erased",
                ["stage"],
                registry=r,
            ),
            state_customers=Gauge("cx_state_customers", "Customer keys held by this worker", registry=r),
            alerts_held=Gauge(
                "cx_churn_alerts_held", "Anonymous keys whose churn alert waits for the key to be linked", registry=r
            ),
            state_bytes=Gauge("cx_state_bytes", "Serialized state held by this worker", registry=r),
            watermark_lag=Gauge("cx_watermark_lag_seconds", "Wall clock minus the newest event time seen", registry=r),
            flush_pending_rows=Gauge("cx_flush_pending_rows", "Rows buffered for the next flush", registry=r),
            assigned_partitions=Gauge(
                "cx_assigned_partitions", "Partitions this worker holds, by topic", ["topic"], registry=r
            ),
            changelog_records=Counter(
                "cx_changelog_records",
                "State records written to the changelog (one per touched key per flush)",
                registry=r,
            ),
        )
