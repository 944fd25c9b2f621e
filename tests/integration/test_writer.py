"""The ClickHouse writer on a real server: a replayed flush stores each dead letter once."""

from __future__ import annotations

import time
import uuid

from schemas.rows import DeadLetterRow
from schemas.settings import Settings
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


def test_offsets_that_repeat_with_new_payloads_are_new_dead_letters(pipeline: Settings) -> None:
    """A recreated topic, a broker that lost its log, a mirrored cluster: the same offsets, other rejections."""
    ch = ClickHouse(pipeline.clickhouse)
    writer = ClickHouseWriter(ch)
    topic = f"test.writer.{uuid.uuid4().hex[:8]}"
    earlier = [_row(topic, 0, offset, payload_hash=f"old{offset}") for offset in range(11)]
    assert writer.write(Batch({"dead_letters": earlier}, 11)) == {"dead_letters": 11}
    fresh = [_row(topic, 0, offset, payload_hash=f"new{offset}") for offset in range(11)]
    assert writer.write(Batch({"dead_letters": fresh}, 11)) == {"dead_letters": 11}  # every new rejection
    assert writer.write(Batch({"dead_letters": [*fresh, *earlier]}, 22)) == {"dead_letters": 0}  # a replay: nothing
    stored = ch.query("SELECT count(), uniqExact(offset, payload_hash) FROM {db}.dead_letters WHERE topic = %(t)s",
                      {"t": topic})  # fmt: skip
    assert stored == [(22, 22)]


def test_a_row_clickhouse_refuses_becomes_a_dead_letter_and_its_neighbours_land(pipeline: Settings) -> None:
    from prometheus_client import CollectorRegistry

    from schemas.rows import SignalRow
    from streams.runtime.metrics import PipelineMetrics

    registry = CollectorRegistry()
    ch = ClickHouse(pipeline.clickhouse)
    writer = ClickHouseWriter(ch, PipelineMetrics.create(registry))
    run = uuid.uuid4().hex[:8]

    def signal(n: int, occurred_at: int) -> SignalRow:
        return SignalRow(f"w-{run}-{n}", f"C-{run}", f"event:w-{run}-{n}", "long_wait", -1, "respect", "phone",
                         "contact_ended", occurred_at, "")  # fmt: skip

    rows = [signal(n, int(time.time())) for n in range(10)]
    rows[6] = signal(6, 2**40)  # beyond any DateTime: the driver refuses to serialize it
    written = writer.write(Batch({"experience_signals": rows}, len(rows)))
    assert written == {"experience_signals": 9, "dead_letters": 1}
    landed = ch.query("SELECT count() FROM {db}.experience_signals WHERE customer_key = %(k)s", {"k": f"C-{run}"})
    assert landed == [(9,)]
    [(topic, reason, subjects, detail)] = ch.query(
        "SELECT topic, reason, subjects, detail FROM {db}.dead_letters WHERE event_id = %(e)s",
        {"e": f"w-{run}-6"},
    )
    assert (topic, reason, subjects) == ("sink:experience_signals", "invalid_field", [f"C-{run}"])
    assert "4294967295" in detail  # the server's reason, numbers intact
    assert registry.get_sample_value("cx_sink_rejected_rows_total", {"table": "experience_signals"}) == 1


def test_the_journey_id_rewrite_keeps_old_journeys_once_under_their_customer(pipeline: Settings) -> None:
    """Migration 0007 on rows written before it: each journey once, under `<anchor>@<customer_key>`."""
    from schemas.rows import JourneyRow
    from sinks.migrate import load_migrations, split_statements

    admin = ClickHouse(pipeline.clickhouse_schema_admin)
    run = uuid.uuid4().hex[:8]
    key, now = f"C-{run}", int(time.time())

    def journey(jid: str, touchpoints: int, merged_into: str = "") -> JourneyRow:
        return JourneyRow(jid, key, "browse", "abandoned", now, now, now, touchpoints, ["web"], 0, merged_into, 5, now)

    old = [journey(f"purchase:O-{run}", 4)._replace(journey_type="purchase", status="completed"),
           journey(f"browse:a-{run}", 3), journey(f"browse:b-{run}", 0, f"browse:a-{run}")]  # fmt: skip
    ClickHouseWriter(ClickHouse(pipeline.clickhouse)).write(Batch({"journeys": old}, len(old)))
    [migration] = [m for m in load_migrations() if m.version == 7]
    rewrite = [s for s in split_statements(migration.sql) if s.startswith("INSERT INTO {db}.journeys")]
    assert len(rewrite) == 2
    for _ in range(2):  # re-runnable
        for statement in rewrite:
            admin.execute(statement.replace("{db}", admin.database))
    rows = admin.query(
        "SELECT journey_id, touchpoints, merged_into FROM {db}.journeys FINAL WHERE customer_key = %(k)s "
        "ORDER BY journey_id",
        {"k": key},
    )
    assert rows == sorted([
        (f"browse:a-{run}", 0, f"browse:a-{run}@{key}"),
        (f"browse:a-{run}@{key}", 3, ""),
        (f"browse:b-{run}", 0, f"browse:b-{run}@{key}"),
        (f"browse:b-{run}@{key}", 0, f"browse:a-{run}@{key}"),
        (f"purchase:O-{run}", 0, f"purchase:O-{run}@{key}"),
        (f"purchase:O-{run}@{key}", 4, ""),
    ])  # fmt: skip
