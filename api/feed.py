"""A POST body as the pipeline will see it (pure).

The service answers what the pipeline will do with each touchpoint, with the pipeline's own validation
(`streams.domain.ingest`, the same core and reasons), and forwards the body unchanged: the workers stay the
place of record, so rejected touchpoints still reach the DLQ topic and `cx.dead_letters`. What the service
refuses whole, and never forwards: a body that is not JSON or not an object, or not a batch envelope when it
says `events` (400), and one over Contract 1's size limits (413).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import orjson

from schemas.api import Accepted, Rejection
from schemas.touchpoint import MAX_BATCH_BYTES, MAX_BATCH_EVENTS, MAX_EVENT_BYTES
from streams.domain.ingest import IngestConfig, Message, ingest
from streams.domain.pii import redact_text

__all__ = ["Problem", "parse", "validate"]

TOPIC: Final = "cx.touchpoints"


@dataclass(frozen=True)
class Problem(Exception):
    """A request refused whole: its HTTP status, a stable slug and what is wrong."""

    status: int
    error: str
    detail: str
    retry_after: int | None = None


def parse(body: bytes) -> list[Any]:
    """The touchpoints of a body (one, or a batch's `events`), or the Problem that refuses it whole."""
    if len(body) > MAX_BATCH_BYTES:
        raise Problem(413, "too_large", f"body of {len(body):,} bytes; at most {MAX_BATCH_BYTES:,}")
    if not body.strip():
        raise Problem(400, "bad_request", 'empty body: send one touchpoint or {"events": [...]}')
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise Problem(400, "invalid_json", f"not UTF-8 JSON: {exc}") from None
    if not isinstance(value, dict):
        raise Problem(400, "not_an_object", f"the body is a JSON object, got {_kind(value)}")
    if "events" not in value:
        if len(body) > MAX_EVENT_BYTES:
            raise Problem(413, "too_large", f"touchpoint of {len(body):,} bytes; at most {MAX_EVENT_BYTES:,}")
        return [value]
    events = value["events"]
    if not isinstance(events, list) or not events:
        raise Problem(400, "bad_request", "events: must be a non-empty array of touchpoints")
    if len(events) > MAX_BATCH_EVENTS:
        raise Problem(413, "too_large", f"batch of {len(events):,} touchpoints; at most {MAX_BATCH_EVENTS:,}")
    return events


def sources(events: list[Any]) -> list[tuple[int, str]]:
    """(index, source) of every touchpoint that names one (the others are the validation's to refuse)."""
    return [(i, e["source"]) for i, e in enumerate(events) if isinstance(e, dict) and isinstance(e.get("source"), str)]


def validate(body: bytes, cfg: IngestConfig, now_ms: int) -> Accepted:
    """What the pipeline will store and dead-letter of a parsed body, by the pipeline's own checks."""
    result = ingest([Message(body, TOPIC, -1, -1, now_ms)], cfg, now_ms)
    # Ids and details as cx.dead_letters will show them: phone numbers and e-mail addresses redacted.
    rejected = [
        Rejection(index=d.index, event_id=redact_text(d.event_id), reason=d.reason.value, detail=redact_text(d.detail))
        for d in result.rejected
    ]
    return Accepted(accepted=len(result.records), rejected=rejected)


def _kind(value: Any) -> str:
    return {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(type(value), "a number")
