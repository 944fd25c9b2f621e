"""Batched, retried, idempotent ClickHouse inserts: `add()` buffers, `write()` inserts."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

from cx_core import Rows, free_detached

from schemas.errors import SinkError, SinkUnavailable
from schemas.rows import COLUMNS, DeadLetterRow, Table
from sinks.clickhouse import ClickHouse, every_row
from streams.domain.dead_letters import bare_dead_letter, refused_row

__all__ = ["TABLE_LEVELS", "TABLE_ORDER", "Batch", "ClickHouseWriter", "SinkMetrics"]


class _Labelled(Protocol):
    def labels(self, *values: str) -> Any: ...


class SinkMetrics(Protocol):
    """The counters the writer keeps (the worker's Prometheus bundle has them: streams/runtime/metrics.py)."""

    @property
    def sink_rows(self) -> _Labelled: ...
    @property
    def sink_batch_seconds(self) -> _Labelled: ...
    @property
    def sink_errors(self) -> _Labelled: ...
    @property
    def sink_rejected_rows(self) -> _Labelled: ...


log = logging.getLogger(__name__)

# Facts before what is derived from them: a crash between tables leaves the derived ones behind,
# never ahead, and the replay rewrites them.
TABLE_ORDER: Final = (
    Table.DEAD_LETTERS,
    Table.TOUCHPOINTS,
    Table.EXPERIENCE_SIGNALS,
    Table.JOURNEYS,
    Table.IDENTITY_LINKS,
    Table.IDENTITY_OVERRIDES,
    Table.IDENTITY_CONFLICTS,
    Table.CHURN_ALERTS,
    Table.ALERT_OUTCOMES,
    Table.CUSTOMER_EXPERIENCE,
    # Last: a forget acknowledgement is visible only once everything flushed with it is stored.
    Table.ERASURES,
)
# TABLE_ORDER in levels: a level's tables are inserted at the same time (one connection each; an insert
# costs ClickHouse a part whatever its size, 6-50 ms here), the levels one after the other. No table of
# a level is derived from another of it, so the order above holds between any two tables it orders.
TABLE_LEVELS: Final = (
    (Table.DEAD_LETTERS, Table.TOUCHPOINTS),
    (Table.EXPERIENCE_SIGNALS, Table.JOURNEYS, Table.IDENTITY_LINKS, Table.IDENTITY_OVERRIDES,
     Table.IDENTITY_CONFLICTS),
    (Table.CHURN_ALERTS,),
    (Table.ALERT_OUTCOMES, Table.CUSTOMER_EXPERIENCE),
    (Table.ERASURES,),
)  # fmt: skip
_LEVEL: Final = {str(t): n for n, level in enumerate(TABLE_LEVELS) for t in level}
# One table's insert: (table, Python rows, the core's rows, where refused rows go or None).
_Job = tuple[str, Sequence[tuple[Any, ...]], Sequence[Rows], list[DeadLetterRow] | None]


@dataclass(slots=True)
class Batch:
    """Rows waiting for one flush, by table: Python row tuples, and the core's `Rows` (kept as they are)."""

    rows: dict[str, list[tuple[Any, ...]]] = field(default_factory=dict)
    count: int = 0
    chunks: dict[str, list[Rows]] = field(default_factory=dict)

    def add(self, table: str, rows: Iterable[tuple[Any, ...]]) -> None:
        if isinstance(rows, Rows):
            if len(rows):
                self.chunks.setdefault(table, []).append(rows)
                self.count += len(rows)
            return
        bucket = self.rows.setdefault(table, [])
        before = len(bucket)
        bucket.extend(rows)
        self.count += len(bucket) - before

    def extend(self, by_table: Mapping[Any, Sequence[tuple[Any, ...]]]) -> None:  # keys: Table or str
        for table, rows in by_table.items():
            self.add(table, rows)

    def tables(self) -> list[str]:
        return sorted({*self.rows, *self.chunks}, key=_order)

    def clear(self) -> None:
        """Let go of every row: called in the writer's thread once they are stored, so a flush's rows are
        freed there (the core frees its large buffers at once, with the GIL released), not by the agents' loop."""
        self.rows.clear()
        free_detached(self.chunks.clear)  # the core's Rows
        self.count = 0


class ClickHouseWriter:
    """Inserts a Batch table by table; waits out outages, and isolates rows ClickHouse refuses for good.

    Every table but dead_letters is a ReplacingMergeTree keyed by deterministic ids, so a retried or
    replayed insert replaces rather than duplicates; dead letters are checked against what is already
    stored for their identity (topic, partition, offset, idx, payload_hash) first.

    Two kinds of failure: an outage (SinkUnavailable: unreachable, busy) is retried with capped
    exponential backoff, holding the flush and so the offsets; any other refusal (a value a column
    cannot hold, a malformed block) is the data's fault, so the insert is split in halves until the
    refused rows are alone. Those become dead letters (topic `sink:<table>`, reason invalid_field,
    the row as JSON) and the rest is stored: one bad row never stops the worker, on first sight or replay.
    """

    def __init__(
        self,
        ch: ClickHouse,
        metrics: SinkMetrics | None = None,
        *,
        max_backoff: float = 30.0,
        stop: threading.Event | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        connect: Callable[[], ClickHouse] | None = None,
        connections: int = 1,
    ) -> None:
        """`connect` opens another connection like `ch`: with it, up to `connections` tables of a level
        are inserted at once (TABLE_LEVELS); without it, one table after the other on `ch`."""
        self.ch = ch
        self._connect = connect
        self._connections: list[ClickHouse] = [ch]
        self._width = max(1, connections) if connect is not None else 1
        self._pool: ThreadPoolExecutor | None = None
        self._local = threading.local()
        self._failures_lock = threading.Lock()
        self.metrics = metrics
        self.max_backoff = max_backoff
        self.stop = stop or threading.Event()
        self._sleep = sleep
        self._clock = clock
        self._wall_clock = wall_clock
        self.failures = 0

    def write(self, batch: Batch) -> dict[str, int]:
        """Insert every table of the batch; returns rows written by table. Blocking: run in a thread."""
        written: dict[str, int] = {}
        refused: list[DeadLetterRow] = []
        levels: dict[int, list[str]] = {}
        for table in batch.tables():
            if batch.rows.get(table) or batch.chunks.get(table):
                levels.setdefault(_LEVEL.get(table, len(TABLE_LEVELS)), []).append(table)
        for _, tables in sorted(levels.items()):
            # A refused dead letter cannot become a dead letter of itself: it is reduced instead.
            jobs: list[_Job] = [
                (t, batch.rows.get(t, []), batch.chunks.get(t, []), refused if t != DEAD_LETTERS else None)
                for t in tables
            ]
            for table, n in self._level(jobs):
                written[table] = n
        if refused:
            # Stored after every table, as dead letters of their own; a dead letter refused in turn is
            # reduced to its reason (never a loop: those rows are not isolated again).
            stored = self._retrying(DEAD_LETTERS, refused, [], None)
            written[DEAD_LETTERS] = written.get(DEAD_LETTERS, 0) + stored
        return written

    def _level(self, jobs: list[_Job]) -> list[tuple[str, int]]:
        """Insert one level's tables, at once when there are connections for that; every insert of the
        level has finished (stored, or failed) before this returns or raises."""
        width = min(self._width, len(jobs))
        if width <= 1:
            return [(job[0], self._retrying(*job)) for job in jobs]
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=self._width, thread_name_prefix="clickhouse-level")
        while len(self._connections) < width:
            assert self._connect is not None
            self._connections.append(self._connect())
        # Job i on connection i % width: each connection is used by one thread at a time.
        lanes = [jobs[i::width] for i in range(width)]
        futures = [self._pool.submit(self._lane, self._connections[i], lane) for i, lane in enumerate(lanes)]
        wait(futures)
        return [done for f in futures for done in f.result()]

    def _lane(self, ch: ClickHouse, jobs: list[_Job]) -> list[tuple[str, int]]:
        self._local.ch = ch
        try:
            return [(job[0], self._retrying(*job)) for job in jobs]
        finally:
            self._local.ch = None

    @property
    def _conn(self) -> ClickHouse:
        """The connection of this thread's inserts: its lane's, or the writer's own."""
        return getattr(self._local, "ch", None) or self.ch

    def _retrying(
        self, table: str, rows: Sequence[tuple[Any, ...]], chunks: Sequence[Rows], refused: list[DeadLetterRow] | None
    ) -> int:
        backoff = 0.5
        while True:
            try:
                return self._isolating(table, rows, chunks, refused)
            except SinkUnavailable:
                with self._failures_lock:
                    self.failures += 1
                if self.metrics is not None:
                    self.metrics.sink_errors.labels(table).inc()
                if self.stop.is_set():
                    raise
                self._sleep(backoff)
                backoff = min(backoff * 2, self.max_backoff)

    def _isolating(
        self,
        table: str,
        rows: Sequence[tuple[Any, ...]],
        chunks: Sequence[Rows],
        refused: list[DeadLetterRow] | None,
    ) -> int:
        """Insert `rows` (and the core's `chunks`); on a refusal that is not an outage, insert each half on its
        own, down to one row (the core's rows become row tuples for that: a refusal is rare)."""
        try:
            return self._insert(table, rows, chunks)
        except SinkUnavailable:
            raise
        except SinkError as exc:
            every = every_row(rows, chunks)
            if len(every) > 1:
                log.warning("ClickHouse refused %d rows of %s (%s); isolating the bad ones", len(every), table, exc)
                mid = len(every) // 2
                return self._isolating(table, every[:mid], [], refused) + self._isolating(
                    table, every[mid:], [], refused
                )
            return self._refused(table, every[0], str(exc), refused)

    def _refused(self, table: str, row: tuple[Any, ...], error: str, refused: list[DeadLetterRow] | None) -> int:
        """Count a refused row and keep it as a dead letter; returns the rows this stored at once."""
        if self.metrics is not None:
            self.metrics.sink_rejected_rows.labels(table).inc()
        now_ms = int(self._wall_clock() * 1000)
        if refused is not None:
            log.error("ClickHouse refused a row of %s for good; stored as a dead letter: %s", table, error)
            refused.append(refused_row(table, row, error, now_ms))
            return 0
        # A dead letter refused in its turn: keep what cannot fail, the fact and its reason.
        log.error("ClickHouse refused a dead-letter row; storing its reason only: %s", error)
        try:
            return self._insert(DEAD_LETTERS, [bare_dead_letter(row, error, now_ms)])
        except SinkUnavailable:
            raise
        except SinkError:
            log.exception("ClickHouse refused even the bare dead letter; it is counted, not stored")
            return 0

    def _insert(self, table: str, rows: Sequence[tuple[Any, ...]], chunks: Sequence[Rows] = ()) -> int:
        if table == DEAD_LETTERS:
            rows = self._new_dead_letters(every_row(rows, chunks))
            chunks = ()
            if not rows:
                return 0
        columns = COLUMNS[table]
        started = self._clock()
        ch = self._conn
        n = ch.insert(table, columns, rows, chunks) if chunks else ch.insert(table, columns, rows)
        if self.metrics is not None:
            self.metrics.sink_batch_seconds.labels(table).observe(self._clock() - started)
            self.metrics.sink_rows.labels(table).inc(n)
        return n

    def _new_dead_letters(self, rows: Sequence[tuple[Any, ...]]) -> Sequence[tuple[Any, ...]]:
        """Drop dead letters already stored: MergeTree does not deduplicate a replayed insert.

        Their identity is where they were read and what they hold: offsets alone repeat when a topic is
        recreated, a broker loses its log or traffic moves to another cluster.
        """
        spans: dict[tuple[str, int], tuple[int, int]] = {}
        for row in rows:
            tp = (row[_TOPIC], row[_PARTITION])
            offset = row[_OFFSET]
            low, high = spans.get(tp, (offset, offset))
            spans[tp] = (min(low, offset), max(high, offset))
        # One query for every partition of the batch: a round trip per partition cost 7% of a worker's CPU.
        where, params = [], {}
        for n, ((topic, partition), (low, high)) in enumerate(spans.items()):
            where.append(f"(topic = %(t{n})s AND partition = %(p{n})s AND offset BETWEEN %(lo{n})s AND %(hi{n})s)")
            params.update({f"t{n}": topic, f"p{n}": partition, f"lo{n}": low, f"hi{n}": high})
        ch = self._conn
        found = ch.execute(
            f"SELECT topic, partition, offset, idx, payload_hash FROM {ch.database}.{DEAD_LETTERS} "  # noqa: S608
            f"WHERE {' OR '.join(where)}",
            params,
        )
        stored = {(str(t), int(p), int(o), int(i), str(h)) for t, p, o, i, h in found}
        if not stored:
            return rows
        return [r for r in rows if _identity(r) not in stored]


DEAD_LETTERS: Final = Table.DEAD_LETTERS
_FIELDS: Final = DeadLetterRow._fields
_TOPIC, _PARTITION, _OFFSET, _IDX, _HASH = (
    _FIELDS.index(name) for name in ("topic", "partition", "offset", "idx", "payload_hash")
)


def _identity(row: tuple[Any, ...]) -> tuple[str, int, int, int, str]:
    return row[_TOPIC], row[_PARTITION], row[_OFFSET], row[_IDX], row[_HASH]


def _order(table: str) -> int:
    return TABLE_ORDER.index(table) if table in TABLE_ORDER else len(TABLE_ORDER)
