"""Reference model of stage 1, the Python stage the native core replaced: messages in, records and dead letters out."""

from __future__ import annotations

import hmac
from collections.abc import Iterable
from typing import Any, Final, NamedTuple

import orjson
from pydantic import ValidationError

from schemas.records import DeadLetter, RejectReason
from schemas.touchpoint import MAX_BATCH_BYTES, MAX_BATCH_EVENTS, MAX_EVENT_BYTES, touchpoints_adapter
from streams.domain.ingest import IngestResult, Message, _encode
from streams.domain.pii import is_junk
from tests.reference.fields import (
    IDENTIFIER_TYPES,
    MAX_TIME_MS,
    IngestConfig,
    Rejected,
    describe,
    identifier,
    kind_of,
    precheck,
    private_id,
    record,
)

__all__ = [
    "IDENTIFIER_TYPES",
    "MAX_TIME_MS",
    "IngestConfig",
    "IngestResult",
    "Message",
    "ingest",
    "kafka_time_ms",
]

_MAX_DETAIL: Final = 1000


class _Candidate(NamedTuple):
    event: Any
    message: Message
    position: int  # in its batch envelope; -1 for a single-touchpoint message


def kafka_time_ms(timestamp_ms: int, now_ms: int) -> int:
    """A Kafka record timestamp, or `now_ms` when it is missing (<= 0) or beyond what a DateTime holds."""
    return timestamp_ms if 0 < timestamp_ms <= MAX_TIME_MS else now_ms


def _subjects(event: Any, cfg: IngestConfig) -> tuple[str, ...]:
    """Whom a rejected payload names, as the pipeline keys them (best effort: it may be malformed)."""
    identity = event.get("identity") if isinstance(event, dict) else None
    if not isinstance(identity, dict):
        return ()
    found = []
    customer_id = identity.get("customer_id")
    if isinstance(customer_id, str) and not is_junk(customer_id, cfg.blocklist):
        found.append(private_id(customer_id.strip(), "customer_id", cfg, None))
    for name, kind in IDENTIFIER_TYPES.items():
        value = identity.get(name)
        if not isinstance(value, str) or is_junk(value, cfg.blocklist):
            continue
        try:
            found.append(f"{kind}:{identifier(name, kind, value, cfg, None)}")
        except ValueError:
            continue
    return tuple(found)


def _dead(
    msg: Message, index: int, reason: RejectReason, detail: str, raw: bytes, event: Any, cfg: IngestConfig
) -> DeadLetter:
    ident = event if isinstance(event, dict) else {}

    def text(key: str) -> str:
        value = ident.get(key)
        return value[:128] if isinstance(value, str) else ""

    return DeadLetter(
        received_ms=msg.timestamp_ms,
        topic=msg.topic,
        partition=msg.partition,
        offset=msg.offset,
        index=index,
        reason=reason,
        detail=detail[:_MAX_DETAIL],
        raw=raw,
        event_id=text("event_id"),
        source=text("source"),
        channel=text("channel"),
        payload_hash=hmac.digest(cfg.pii_secret, raw, "sha256")[:16].hex(),
        subjects=_subjects(event, cfg),
    )


def _unpack(msg: Message, out: IngestResult, cfg: IngestConfig) -> list[_Candidate]:
    """Split one message into candidate events; whole-message problems become dead letters."""
    raw = msg.value or b""

    def reject(reason: RejectReason, detail: str, payload: Any = None) -> list[_Candidate]:
        out.rejected.append(_dead(msg, 0, reason, detail, raw, payload, cfg))
        return []

    if len(raw) > MAX_BATCH_BYTES:
        return reject(RejectReason.TOO_LARGE, f"message is {len(raw)} bytes; at most 8 MiB")
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        return reject(RejectReason.INVALID_JSON, f"not UTF-8 JSON: {exc}")
    if not isinstance(doc, dict):
        return reject(RejectReason.NOT_AN_OBJECT, f"a touchpoint is a JSON object, got {kind_of(doc)}")
    if "events" in doc and "event_id" not in doc:
        events = doc["events"]
        if len(doc) != 1:
            extra = sorted(k for k in doc if k != "events")[:5]
            return reject(RejectReason.INVALID_FIELD, f"batch envelope allows only 'events', got {extra}")
        if not isinstance(events, list) or not events:
            return reject(RejectReason.INVALID_FIELD, "events: must be a non-empty array")
        if len(events) > MAX_BATCH_EVENTS:
            return reject(RejectReason.TOO_LARGE, f"batch of {len(events)} touchpoints; at most 1000")
        candidates = []
        for i, event in enumerate(events):
            # Only a batch over 64 KiB can hold a touchpoint over 64 KiB: skip the re-encode.
            encoded = _encode(event) if len(raw) > MAX_EVENT_BYTES else b""
            if len(encoded) > MAX_EVENT_BYTES:
                out.rejected.append(
                    _dead(msg, i, RejectReason.TOO_LARGE, "touchpoint over 64 KiB", encoded, event, cfg)
                )
                continue
            candidates.append(_Candidate(event, msg, i))
        return candidates
    if len(raw) > MAX_EVENT_BYTES:
        return reject(RejectReason.TOO_LARGE, f"touchpoint is {len(raw)} bytes; at most 64 KiB", doc)
    return [_Candidate(doc, msg, -1)]


def ingest(messages: Iterable[Message], cfg: IngestConfig, now_ms: int) -> IngestResult:
    """Validate a batch of messages with one schema call; every rejection is a dead letter."""
    out = IngestResult()
    candidates: list[_Candidate] = []
    for msg in messages:
        received = kafka_time_ms(msg.timestamp_ms, now_ms)
        if received != msg.timestamp_ms:
            # Missing (0, -1) is common and harmless; beyond what DateTime holds is counted.
            out.replaced_timestamps += int(msg.timestamp_ms > MAX_TIME_MS or msg.timestamp_ms < -1)
            msg = msg._replace(timestamp_ms=received)
        for cand in _unpack(msg, out, cfg):
            try:
                precheck(cand.event, cfg.blocklist)
            except Rejected as rej:
                out.rejected.append(_reject(cand, rej, cfg))
            else:
                candidates.append(cand)
    failed: dict[int, list[Any]] = {}
    try:
        touchpoints_adapter.validate_python([c.event for c in candidates])
    except ValidationError as exc:
        for err in exc.errors(include_url=False, include_input=False, include_context=False):
            failed.setdefault(int(err["loc"][0]), []).append(err)
    for i, cand in enumerate(candidates):
        errors = failed.get(i)
        try:
            if errors:
                raise Rejected(RejectReason.INVALID_FIELD, describe(errors))
            out.records.append(record(cand.event, cfg, now_ms, cand.message.timestamp_ms, out.pii_hashed))
        except Rejected as rej:
            out.rejected.append(_reject(cand, rej, cfg))
    return out


def _reject(cand: _Candidate, rej: Rejected, cfg: IngestConfig) -> DeadLetter:
    # A single-event message keeps its exact bytes; a batch element is re-encoded on its own.
    raw = (cand.message.value or b"") if cand.position < 0 else _encode(cand.event)
    return _dead(cand.message, max(cand.position, 0), rej.reason, rej.detail, raw, cand.event, cfg)
