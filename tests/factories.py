"""Test data builders: wire-format touchpoints and pipeline records."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

from aiokafka import TopicPartition
from faust.types.tuples import ConsumerMessage

from schemas.records import TouchpointRecord
from streams.domain.customer import DAY_MS, Policy
from streams.domain.ingest import IngestConfig, Message, ingest
from streams.domain.journeys import JourneyPolicy
from streams.domain.signals import Classifier

T0 = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)
SECRET = b"test-secret-0123456789"
_ids = itertools.count(1)


def touchpoint(
    event_type: str = "page_view",
    *,
    at: datetime = T0,
    channel: str = "web",
    identity: dict[str, str] | None = None,
    context: dict[str, str] | None = None,
    metrics: dict[str, Any] | None = None,
    event_id: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A valid v1 wire touchpoint (a dict, as feeders send it)."""
    event: dict[str, Any] = {
        "event_id": event_id or f"evt-{next(_ids)}",
        "schema_version": 1,
        "occurred_at": at.isoformat(),
        "source": "test",
        "channel": channel,
        "event_type": event_type,
        "identity": identity if identity is not None else {"customer_id": "C1"},
    }
    if context:
        event["context"] = context
    if metrics:
        event["metrics"] = metrics
    event.update(extra)
    return event


def record(key: str | None = None, **kwargs: Any) -> TouchpointRecord:
    """A TouchpointRecord through the real ingest; `key` defaults to the customer_id."""
    import orjson

    result = ingest(
        [Message(orjson.dumps(touchpoint(**kwargs)), "cx.touchpoints", 0, 0, 0)],
        IngestConfig(SECRET, "CN", frozenset({"null", "0"})),
        now_ms=2_000_000_000_000,
    )
    assert not result.rejected, result.rejected
    rec = result.records[0]
    return rec._replace(key=key or rec.customer_id or "~" + rec.identifiers[0])


def policy(**overrides: Any) -> Policy:
    timeouts = {"browse": 30 * 60_000, "service": 7 * DAY_MS, "purchase": 30 * DAY_MS}
    return Policy(classifier=Classifier(), journeys=JourneyPolicy(timeouts, 7 * DAY_MS), **overrides)


def days(n: float) -> timedelta:
    return timedelta(days=n)


def kafka_message(topic: str, partition: int, offset: int, value: bytes | None, generation: int = 0) -> ConsumerMessage:
    """A fetched record as Faust's aiokafka driver hands it on: `tp` is aiokafka's TopicPartition, not Faust's TP."""
    tp: Any = TopicPartition(topic, partition)  # what the driver passes, though Faust annotates its TP
    return ConsumerMessage(topic, partition, offset, 1.7e9, 0, None, None, value, None, tp=tp, generation_id=generation)
