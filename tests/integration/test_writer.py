"""The ClickHouse writer on a real server: a replayed flush stores each dead letter once."""

from __future__ import annotations

import time
import uuid

from cxj.settings import Settings
from schemas.rows import DeadLetterRow
from sinks.clickhouse import ClickHouse
from sinks.writer import Batch, ClickHouseWriter


def _row(topic: str, partition: int, offset: int, idx: int = 0, payload_hash: str = "h") -> DeadLetterRow:
    return DeadLetterRow(int(time.time()), topic, partition, offset, idx, "invalid_json", "d", "{", "", "", "",
                         payload_hash, [])  # fmt: skip


def test_a_replayed_flush_stores_each_dead_letter_once_across_partitions(pipeline: Settings) -> None:
    ch = ClickHouse(pipeline.clickhouse)
    writer = ClickHouseWriter(ch)
    topic = f"test.writer.{uuid.uuid4().hex[:8]}"  # only this test's rows
    first = [_row(topic, 0, 10), _row(topic, 0, 11, 0), _row(topic, 0, 11, 1), _row(topic, 3, 500)]
    writer.write(Batch({"dead_letters": first}, len(first)))
    # After a crash the same offsets come again, with new ones in between and on other partitions.
    again = [*first, _row(topic, 0, 12), _row(topic, 3, 499), _row(topic, 5, 7)]
    written = writer.write(Batch({"dead_letters": again}, len(again)))
    assert written == {"dead_letters": 3}
    stored = ch.query(
        "SELECT partition, offset, idx, count() FROM {db}.dead_letters WHERE topic = %(t)s "
        "GROUP BY partition, offset, idx ORDER BY partition, offset, idx",
        {"t": topic},
    )
    assert stored == [(0, 10, 0, 1), (0, 11, 0, 1), (0, 11, 1, 1), (0, 12, 0, 1), (3, 499, 0, 1), (3, 500, 0, 1),
                      (5, 7, 0, 1)]  # fmt: skip
