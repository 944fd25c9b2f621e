"""Issue 11's poison values at ingest: times no column holds, odd Kafka timestamps, invisible and control ids."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from streams.domain.ingest import MAX_TIME_MS, IngestConfig, IngestResult, Message, ingest, kafka_time_ms
from tests.factories import SECRET, touchpoint

CFG = IngestConfig(SECRET, "CN", frozenset({"null", "0"}))
NOW_MS = 1_795_000_000_000


def run(*events: Any, timestamp_ms: int = NOW_MS - 1000) -> IngestResult:
    values = [e if isinstance(e, bytes) else orjson.dumps(e) for e in events]
    return ingest([Message(v, "cx.touchpoints", 0, i, timestamp_ms) for i, v in enumerate(values)], CFG, NOW_MS)


def reasons(result: IngestResult) -> list[tuple[str, str]]:
    return [(d.reason.value, d.detail) for d in result.rejected]


@pytest.mark.parametrize(
    "occurred_at",
    ["0001-01-01T00:00:00+14:00", "1969-12-31T23:59:59Z", "1969-12-31T23:59:59.999+00:00", "1970-01-01T07:59:59+08:00"],
)
def test_a_time_before_1970_is_invalid_field_not_a_failed_insert(occurred_at: str) -> None:
    result = run(touchpoint(occurred_at=occurred_at))
    assert result.records == []
    [(reason, detail)] = reasons(result)
    assert reason == "invalid_field" and "before 1970-01-01T00:00:00Z" in detail


def test_the_epoch_itself_is_accepted_to_the_millisecond() -> None:
    [rec] = run(touchpoint(occurred_at="1970-01-01T08:00:00.250+08:00")).records
    assert rec.occurred_ms == 250


def test_a_time_after_2106_is_invalid_field_even_on_a_clock_that_far_ahead() -> None:
    late = 4_294_967_296_000
    event = touchpoint(occurred_at="2106-02-07T06:28:16Z")
    result = ingest([Message(orjson.dumps(event), "t", 0, 0, 0)], CFG, now_ms=late + 10**6)
    assert [r for r, _ in reasons(result)] == ["invalid_field"]
    assert "after 2106-02-07T06:28:15Z" in result.rejected[0].detail


@pytest.mark.parametrize("timestamp_ms", [5_000_000_000_000, MAX_TIME_MS + 1, -5])
def test_a_kafka_timestamp_no_datetime_holds_is_replaced_by_the_receive_time_and_counted(timestamp_ms: int) -> None:
    result = run(touchpoint(), b"{not json", timestamp_ms=timestamp_ms)
    assert [rec.received_ms for rec in result.records] == [NOW_MS]
    assert [d.received_ms for d in result.rejected] == [NOW_MS]
    assert result.replaced_timestamps == 2  # counted per message


@pytest.mark.parametrize("timestamp_ms", [0, -1])
def test_a_missing_kafka_timestamp_is_the_receive_time_and_not_counted(timestamp_ms: int) -> None:
    result = run(touchpoint(), timestamp_ms=timestamp_ms)
    assert [rec.received_ms for rec in result.records] == [NOW_MS]
    assert result.replaced_timestamps == 0


def test_kafka_time_keeps_every_timestamp_a_column_holds() -> None:
    assert kafka_time_ms(1, NOW_MS) == 1
    assert kafka_time_ms(MAX_TIME_MS, NOW_MS) == MAX_TIME_MS
    assert kafka_time_ms(MAX_TIME_MS + 1, NOW_MS) == NOW_MS


def test_schema_version_1_point_0_is_not_the_integer_1() -> None:
    [(reason, detail)] = reasons(run(touchpoint(schema_version=1.0)))
    assert reason == "invalid_field" and detail.startswith("schema_version: must be the integer 1")


def test_a_batch_inside_a_batch_is_invalid_field_and_spares_its_neighbours() -> None:
    inner = {"events": [touchpoint(event_id="inner")]}
    result = run({"events": [touchpoint(event_id="a"), inner, touchpoint(event_id="b")]})
    assert [r.event_id for r in result.records] == ["a", "b"]
    [(reason, detail)] = reasons(result)
    assert reason == "invalid_field" and "batches do not nest" in detail
    assert result.rejected[0].index == 1


@pytest.mark.parametrize("event_id", ["", " ", "\u200b", "\u3000\u200d", "\x00", "a\x00b", "evt\n1", "\x1b[31m"])
def test_an_event_id_must_be_visible_and_free_of_control_characters(event_id: str) -> None:
    event = touchpoint()
    event["event_id"] = event_id
    [(reason, detail)] = reasons(run(event))
    assert reason == "invalid_field" and detail.startswith("event_id:")


@pytest.mark.parametrize("customer_id", ["\u200b", " \u200b\ufeff ", "\u2060", "\x00"])
def test_an_invisible_customer_id_is_no_customer(customer_id: str) -> None:
    [(reason, _)] = reasons(run(touchpoint(identity={"customer_id": customer_id})))
    assert reason == "missing_identity"
    # Beside a real identifier it is simply absent: no customer named by a zero-width space.
    [rec] = run(touchpoint(identity={"customer_id": customer_id, "anonymous_id": "a-1"})).records
    assert (rec.customer_id, rec.identifiers) == (None, ("anon:a-1",))


@pytest.mark.parametrize(
    "where", [("identity", "customer_id"), ("identity", "device_id"), ("context", "order_id"), ("source",)]
)
def test_a_control_character_inside_an_id_is_invalid_field(where: tuple[str, ...]) -> None:
    event = touchpoint(identity={"customer_id": "C1", "device_id": "d1"}, context={"order_id": "o1"})
    node = event
    for part in where[:-1]:
        node = node[part]
    node[where[-1]] = "ab\x07cd"
    [(reason, detail)] = reasons(run(event))
    assert reason == "invalid_field" and "control characters" in detail


def test_surrounding_whitespace_is_not_a_control_character_of_an_id() -> None:
    [rec] = run(touchpoint(identity={"customer_id": "\tC1\n"}, context={"order_id": "o1"})).records
    assert rec.customer_id == "C1"


def test_an_invisible_context_id_is_no_anchor() -> None:
    [rec] = run(touchpoint(context={"order_id": "\u200b", "case_id": " "})).records
    assert (rec.order_id, rec.case_id) == (None, None)
