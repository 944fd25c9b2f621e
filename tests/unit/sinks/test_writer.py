"""The writer's failure handling without a server: outages are retried, refused rows isolated as dead letters."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from schemas.errors import SinkError, SinkUnavailable
from schemas.rows import DeadLetterRow, SignalRow
from sinks.writer import Batch, ClickHouseWriter
from streams.runtime.metrics import PipelineMetrics

POISON = 2**40  # a DateTime no column holds


class FakeClickHouse:
    """Refuses any insert holding POISON (as the driver does for an out-of-range DateTime); stores the rest."""

    database = "cx"

    def __init__(self, outages: int = 0) -> None:
        self.tables: dict[str, list[tuple[Any, ...]]] = {}
        self.inserts: list[tuple[str, int]] = []
        self.outages = outages

    def insert(self, table: str, columns: Any, rows: list[tuple[Any, ...]]) -> int:
        self.inserts.append((table, len(rows)))
        if self.outages:
            self.outages -= 1
            raise SinkUnavailable("ClickHouse at 127.0.0.1:9000 unreachable")
        if any(POISON in row for row in rows):
            raise SinkError("a value does not fit its column: 'I' format requires 0 <= number <= 4294967295")
        self.tables.setdefault(table, []).extend(rows)
        return len(rows)

    def execute(self, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
        assert sql.startswith("SELECT topic, partition, offset, idx, payload_hash FROM cx.dead_letters")
        return [(r.topic, r.partition, r.offset, r.idx, r.payload_hash) for r in self.tables.get("dead_letters", [])]


def signal(n: int, occurred_at: int = 1_790_000_000) -> SignalRow:
    return SignalRow(f"e{n}", "C1", f"event:e{n}", "long_wait", -1, "respect", "phone", "contact_ended",
                     occurred_at, "")  # fmt: skip


def dead(offset: int, payload_hash: str = "h", topic: str = "cx.touchpoints") -> DeadLetterRow:
    return DeadLetterRow(1_790_000_000, topic, 0, offset, 0, "invalid_json", "d", "{", "", "", "", payload_hash, [])


def writer(ch: FakeClickHouse, registry: CollectorRegistry | None = None) -> ClickHouseWriter:
    metrics = PipelineMetrics.create(registry) if registry is not None else None
    return ClickHouseWriter(ch, metrics, sleep=lambda _: None, wall_clock=lambda: 1_800_000_000.0)  # type: ignore[arg-type]


@pytest.mark.parametrize("at", [0, 1, 7, 15])
def test_a_refused_row_is_isolated_stored_as_a_dead_letter_and_its_neighbours_land(at: int) -> None:
    ch, registry = FakeClickHouse(), CollectorRegistry()
    rows = [signal(n) for n in range(16)]
    rows[at] = signal(at, occurred_at=POISON)
    written = writer(ch, registry).write(Batch({"experience_signals": rows}, len(rows)))
    assert written == {"experience_signals": 15, "dead_letters": 1}
    assert [r.event_id for r in ch.tables["experience_signals"]] == [f"e{n}" for n in range(16) if n != at]
    [letter] = ch.tables["dead_letters"]
    assert (letter.topic, letter.reason, letter.event_id) == ("sink:experience_signals", "invalid_field", f"e{at}")
    assert "does not fit its column" in letter.detail
    assert json.loads(letter.raw)["occurred_at"] == POISON
    assert letter.subjects == ["C1"]
    assert registry.get_sample_value("cx_sink_rejected_rows_total", {"table": "experience_signals"}) == 1
    # Halving: a refused row among 16 costs about 2 log2(16) inserts, not one per row.
    assert len([t for t, _ in ch.inserts if t == "experience_signals"]) <= 9


def test_a_replay_of_the_same_refusal_stores_its_dead_letter_once() -> None:
    ch = FakeClickHouse()
    rows = [signal(1), signal(2, occurred_at=POISON)]
    writer(ch).write(Batch({"experience_signals": rows}, 2))
    writer(ch).write(Batch({"experience_signals": rows}, 2))  # a crash before the acks: the flush comes again
    assert len(ch.tables["dead_letters"]) == 1


def test_an_outage_is_retried_and_never_turns_rows_into_dead_letters() -> None:
    ch, registry = FakeClickHouse(outages=3), CollectorRegistry()
    rows = [signal(n) for n in range(4)]
    assert writer(ch, registry).write(Batch({"experience_signals": rows}, 4)) == {"experience_signals": 4}
    assert "dead_letters" not in ch.tables
    assert registry.get_sample_value("cx_sink_errors_total", {"table": "experience_signals"}) == 3


def test_a_refused_dead_letter_is_reduced_to_its_reason_and_stored() -> None:
    ch = FakeClickHouse()
    bad = dead(5)._replace(received_at=POISON)
    written = writer(ch).write(Batch({"dead_letters": [dead(4), bad]}, 2))
    assert written == {"dead_letters": 2}
    reduced = ch.tables["dead_letters"][-1]
    assert (reduced.topic, reduced.raw, reduced.received_at) == ("sink:dead_letters", "", 1_800_000_000)
    assert "refused a dead letter" in reduced.detail


def test_a_dead_letter_is_the_same_only_with_the_same_payload_at_the_same_offset() -> None:
    ch = FakeClickHouse()
    w = writer(ch)
    w.write(Batch({"dead_letters": [dead(10, "a"), dead(11, "b")]}, 2))
    # The topic was recreated: offsets 10 and 11 again, with other payloads; and a true replay of 10.
    written = w.write(Batch({"dead_letters": [dead(10, "c"), dead(11, "d"), dead(10, "a")]}, 3))
    assert written == {"dead_letters": 2}
    assert sorted((r.offset, r.payload_hash) for r in ch.tables["dead_letters"]) == [
        (10, "a"), (10, "c"), (11, "b"), (11, "d")]  # fmt: skip


def test_the_levels_are_the_commit_order() -> None:
    from sinks.writer import TABLE_LEVELS, TABLE_ORDER

    assert tuple(t for level in TABLE_LEVELS for t in level) == TABLE_ORDER


def test_a_level_s_tables_go_in_at_once_on_connections_of_their_own_and_levels_in_order() -> None:
    """Every table of a level inserted concurrently (one connection each), a level only after the one before."""
    import threading

    from schemas.rows import ROWS_BY_TABLE
    from sinks.writer import _LEVEL, TABLE_LEVELS
    from tests.current_clickhouse import dataset

    log: list[tuple[str, str, float, float, int]] = []
    lock = threading.Lock()
    made: list[Any] = []

    class Slow(FakeClickHouse):
        def insert(self, table: str, columns: Any, rows: list[tuple[Any, ...]]) -> int:
            began = time.monotonic()
            time.sleep(0.05)  # the server making a part
            n = super().insert(table, columns, rows)
            with lock:
                log.append((table, threading.current_thread().name, began, time.monotonic(), id(self)))
            return n

    def connect() -> Slow:
        made.append(Slow())
        return made[-1]

    rows = dataset().rows
    first = Slow()
    writer = ClickHouseWriter(first, connect=connect, connections=8)  # type: ignore[arg-type]
    written = writer.write(Batch({t: list(r) for t, r in rows.items()}, sum(map(len, rows.values()))))
    assert written == {t: len(r) for t, r in rows.items()}
    assert set(rows) == {str(t) for t in ROWS_BY_TABLE}
    spans = {table: (began, ended, conn) for table, _, began, ended, conn in log}
    for n, level in enumerate(TABLE_LEVELS):
        mine = [spans[str(t)] for t in level]
        if len(mine) > 1:
            assert len({conn for _, _, conn in mine}) == len(mine)  # a connection each
            assert max(b for b, _, _ in mine) < min(e for _, e, _ in mine)  # all in flight together
        for later in (spans[t] for t in spans if _LEVEL[t] > n):
            assert later[0] >= max(e for _, e, _ in mine)  # a level starts when the one before is stored
    assert len(made) == 4  # the widest level's five: the writer's own connection and four more, opened once
    writer.write(Batch({t: list(r) for t, r in rows.items()}, 1))
    assert len(made) == 4


def test_an_outage_on_one_lane_is_waited_out_while_the_others_are_stored() -> None:
    from tests.current_clickhouse import dataset

    rows = dataset().rows
    down = FakeClickHouse(outages=2)
    waits: list[float] = []
    writer = ClickHouseWriter(FakeClickHouse(), connect=lambda: down, connections=2, sleep=waits.append)  # type: ignore[arg-type]
    written = writer.write(Batch({t: list(r) for t, r in rows.items()}, 1))
    assert written == {t: len(r) for t, r in rows.items()} and writer.failures == 2 and waits == [0.5, 1.0]
