"""Batched, retried, idempotent ClickHouse inserts: `add()` buffers, `write()` inserts."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Final

from cxj.errors import SinkUnavailable
from schemas.rows import ROWS_BY_TABLE
from sinks.clickhouse import ClickHouse
from streams.metrics import Metrics

__all__ = ["TABLE_ORDER", "Batch", "ClickHouseWriter"]

# Facts before what is derived from them: a crash between tables leaves the derived ones behind,
# never ahead, and the replay rewrites them.
TABLE_ORDER: Final = (
    "dead_letters",
    "touchpoints",
    "experience_signals",
    "journeys",
    "identity_links",
    "identity_overrides",
    "identity_conflicts",
    "churn_alerts",
    "customer_experience",
    # Last: a forget acknowledgement is visible only once everything flushed with it is stored.
    "erasures",
)


@dataclass(slots=True)
class Batch:
    """Rows waiting for one flush, by table."""

    rows: dict[str, list[tuple[Any, ...]]] = field(default_factory=dict)
    count: int = 0

    def add(self, table: str, rows: Iterable[tuple[Any, ...]]) -> None:
        bucket = self.rows.setdefault(table, [])
        before = len(bucket)
        bucket.extend(rows)
        self.count += len(bucket) - before

    def extend(self, by_table: dict[str, list[tuple[Any, ...]]]) -> None:
        for table, rows in by_table.items():
            self.add(table, rows)


class ClickHouseWriter:
    """Inserts a Batch table by table; waits out outages with capped exponential backoff.

    Every table but dead_letters is a ReplacingMergeTree keyed by deterministic ids, so a
    retried or replayed insert replaces rather than duplicates; dead letters are checked
    against what is already stored for their (topic, partition, offset, idx) first.
    """

    def __init__(
        self,
        ch: ClickHouse,
        metrics: Metrics | None = None,
        *,
        max_backoff: float = 30.0,
        stop: threading.Event | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ch = ch
        self.metrics = metrics
        self.max_backoff = max_backoff
        self.stop = stop or threading.Event()
        self._sleep = sleep
        self._clock = clock
        self.failures = 0

    def write(self, batch: Batch) -> dict[str, int]:
        """Insert every table of the batch; returns rows written by table. Blocking: run in a thread."""
        written: dict[str, int] = {}
        for table in sorted(batch.rows, key=_order):
            rows = batch.rows[table]
            if rows:
                written[table] = self._retrying(table, rows)
        return written

    def _retrying(self, table: str, rows: list[tuple[Any, ...]]) -> int:
        backoff = 0.5
        while True:
            try:
                return self._insert(table, rows)
            except SinkUnavailable:
                self.failures += 1
                if self.metrics is not None:
                    self.metrics.sink_errors.labels(table).inc()
                if self.stop.is_set():
                    raise
                self._sleep(backoff)
                backoff = min(backoff * 2, self.max_backoff)

    def _insert(self, table: str, rows: list[tuple[Any, ...]]) -> int:
        if table == "dead_letters":
            rows = self._new_dead_letters(rows)
        columns = ROWS_BY_TABLE[table]._fields
        started = self._clock()
        n = self.ch.insert(table, columns, rows)
        if self.metrics is not None:
            self.metrics.sink_batch_seconds.labels(table).observe(self._clock() - started)
            self.metrics.sink_rows.labels(table).inc(n)
        return n

    def _new_dead_letters(self, rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
        """Drop dead letters already stored: MergeTree does not deduplicate a replayed insert."""
        spans: dict[tuple[str, int], tuple[int, int]] = {}
        for row in rows:
            tp = (row[1], row[2])
            low, high = spans.get(tp, (row[3], row[3]))
            spans[tp] = (min(low, row[3]), max(high, row[3]))
        # One query for every partition of the batch: a round trip per partition cost 7% of a worker's CPU.
        where, params = [], {}
        for n, ((topic, partition), (low, high)) in enumerate(spans.items()):
            where.append(f"(topic = %(t{n})s AND partition = %(p{n})s AND offset BETWEEN %(lo{n})s AND %(hi{n})s)")
            params.update({f"t{n}": topic, f"p{n}": partition, f"lo{n}": low, f"hi{n}": high})
        found = self.ch.execute(
            f"SELECT topic, partition, offset, idx FROM {self.ch.database}.dead_letters "  # noqa: S608
            f"WHERE {' OR '.join(where)}",
            params,
        )
        stored = {(str(t), int(p), int(o), int(i)) for t, p, o, i in found}
        if not stored:
            return rows
        return [r for r in rows if (r[1], r[2], r[3], r[4]) not in stored]


def _order(table: str) -> int:
    return TABLE_ORDER.index(table) if table in TABLE_ORDER else len(TABLE_ORDER)
