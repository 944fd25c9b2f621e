"""Stage 1, pure: Kafka messages in, validated touchpoint records and dead letters out."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final, NamedTuple

import orjson
from pydantic import ValidationError

from schemas.records import DeadLetter, RejectReason, TouchpointRecord
from schemas.touchpoint import (
    CHANNELS,
    IDENTITY_FIELDS,
    MAX_BATCH_BYTES,
    MAX_BATCH_EVENTS,
    MAX_EVENT_BYTES,
    touchpoints_adapter,
)
from streams.pii import hash_pii, is_junk, normalize_email, normalize_phone, redact_text

__all__ = ["IDENTIFIER_TYPES", "IngestConfig", "IngestResult", "Message", "ingest"]

# identity field -> identifier type, in Contract 2's priority order (customer_id handled apart).
IDENTIFIER_TYPES: Final = {
    "anonymous_id": "anon",
    "device_id": "device",
    "phone": "phone",
    "email": "email",
    "wechat_openid": "wechat",
}
_CHANNELS: Final = frozenset(CHANNELS)
_CONTEXT_FIELDS: Final = ("order_id", "case_id", "contact_id", "session_id", "agent_id", "store_id")
_METRIC_FIELDS: Final = ("wait_seconds", "transfers", "handled_by", "resolved", "csat", "nps", "ces", "rating",
                         "sentiment", "amount", "currency")  # fmt: skip
_NO_CONTEXT: Final = (None,) * len(_CONTEXT_FIELDS)
_NO_METRICS: Final = (None,) * len(_METRIC_FIELDS)
_new_record: Final = TouchpointRecord._make
_POSITIONAL: Final = _CONTEXT_FIELDS + _METRIC_FIELDS  # consecutive, right after `identifiers`
_at = TouchpointRecord._fields.index("identifiers") + 1
if TouchpointRecord._fields[_at : _at + len(_POSITIONAL)] != _POSITIONAL:
    raise ImportError("TouchpointRecord's context and metrics fields moved: update ingest's field lists")
_MAX_DETAIL: Final = 1000


@dataclass(frozen=True, slots=True)
class IngestConfig:
    """What ingest needs from the settings."""

    pii_secret: bytes
    region: str = "CN"
    blocklist: frozenset[str] = frozenset()
    future_tolerance_ms: int = 300_000


class Message(NamedTuple):
    """A Kafka message as ingest sees it."""

    value: bytes | None
    topic: str
    partition: int
    offset: int
    timestamp_ms: int


@dataclass(slots=True)
class IngestResult:
    """Accepted records in input order, and one dead letter per rejected payload."""

    records: list[TouchpointRecord] = field(default_factory=list)
    rejected: list[DeadLetter] = field(default_factory=list)


class _Candidate(NamedTuple):
    event: Any
    message: Message
    position: int  # in its batch envelope; -1 for a single-touchpoint message


class _Rejected(Exception):
    def __init__(self, reason: RejectReason, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def _dead(
    msg: Message, index: int, reason: RejectReason, detail: str, raw: bytes, event: Any, now_ms: int
) -> DeadLetter:
    ident = event if isinstance(event, dict) else {}

    def text(key: str) -> str:
        value = ident.get(key)
        return value[:128] if isinstance(value, str) else ""

    return DeadLetter(
        received_ms=msg.timestamp_ms if msg.timestamp_ms > 0 else now_ms,
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
    )


def _unpack(msg: Message, out: IngestResult, now_ms: int) -> list[_Candidate]:
    """Split one message into candidate events; whole-message problems become dead letters."""
    raw = msg.value or b""

    def reject(reason: RejectReason, detail: str, payload: Any = None) -> list[_Candidate]:
        out.rejected.append(_dead(msg, 0, reason, detail, raw, payload, now_ms))
        return []

    if len(raw) > MAX_BATCH_BYTES:
        return reject(RejectReason.TOO_LARGE, f"message is {len(raw)} bytes; at most 8 MiB")
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        return reject(RejectReason.INVALID_JSON, f"not UTF-8 JSON: {exc}")
    if not isinstance(doc, dict):
        return reject(RejectReason.NOT_AN_OBJECT, f"a touchpoint is a JSON object, got {_kind(doc)}")
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
                    _dead(msg, i, RejectReason.TOO_LARGE, "touchpoint over 64 KiB", encoded, event, now_ms)
                )
                continue
            candidates.append(_Candidate(event, msg, i))
        return candidates
    if len(raw) > MAX_EVENT_BYTES:
        return reject(RejectReason.TOO_LARGE, f"touchpoint is {len(raw)} bytes; at most 64 KiB", doc)
    return [_Candidate(doc, msg, -1)]


def _encode(value: Any) -> bytes:
    """Compact JSON of one batch element, however deep: orjson reads 1024 levels but writes only 254."""
    try:
        return orjson.dumps(value)
    except orjson.JSONEncodeError:
        pass
    out: list[bytes] = []
    todo: list[Any] = [value]
    while todo:  # iterative, so a hostile nesting depth cannot exhaust the stack either
        item = todo.pop()
        if isinstance(item, bytes):  # punctuation queued below; decoded JSON never holds bytes
            out.append(item)
        elif isinstance(item, dict) and item:
            parts: list[Any] = []
            for key, val in item.items():
                parts += [b"," if parts else b"{", orjson.dumps(key) + b":", val]
            todo += reversed([*parts, b"}"])
        elif isinstance(item, list) and item:
            parts = []
            for val in item:
                parts += [b"," if parts else b"[", val]
            todo += reversed([*parts, b"]"])
        else:
            out.append(orjson.dumps(item))
    return b"".join(out)


def _kind(value: Any) -> str:
    return {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(type(value), "a number")


def _precheck(event: Any, blocklist: frozenset[str]) -> None:
    """The specific reasons, checked before generic validation so they win over invalid_field."""
    if not isinstance(event, dict):
        raise _Rejected(RejectReason.NOT_AN_OBJECT, f"a touchpoint is a JSON object, got {_kind(event)}")
    version = event.get("schema_version")
    if isinstance(version, bool):  # JSON true is not the integer 1 (True == 1 in Python)
        raise _Rejected(RejectReason.INVALID_FIELD, f"schema_version: must be the integer 1, got {_kind(version)}")
    if isinstance(version, int) and version != 1:
        raise _Rejected(
            RejectReason.UNSUPPORTED_SCHEMA_VERSION,
            f"schema_version {version}; this pipeline reads 1",
        )
    channel = event.get("channel")
    if isinstance(channel, str) and channel not in _CHANNELS:
        raise _Rejected(
            RejectReason.UNKNOWN_CHANNEL,
            f"channel {channel[:40]!r} is not one of {', '.join(CHANNELS)}",
        )
    identity = event.get("identity")
    if identity is None or identity == {}:
        raise _Rejected(RejectReason.MISSING_IDENTITY, "identity: at least one identifier is required")
    if isinstance(identity, dict):
        values = [identity.get(f) for f in IDENTITY_FIELDS]
        if all(v is None or (isinstance(v, str) and is_junk(v, blocklist)) for v in values):
            raise _Rejected(
                RejectReason.MISSING_IDENTITY,
                "identity: no usable identifier (empty or placeholder values such as null, 0, -1)",
            )


def _describe(errors: Sequence[Any]) -> str:
    parts = []
    for err in errors[:3]:
        loc = ".".join(str(p) for p in err["loc"][1:]) or "touchpoint"
        parts.append(f"{loc}: {err['msg']}")
    more = f" (+{len(errors) - 3} more)" if len(errors) > 3 else ""
    return "; ".join(parts) + more


def _ms(text: str) -> int:
    try:
        # RFC 3339 allows a lower-case 'z'; Python 3.11's parser only takes 'Z'.
        when = datetime.fromisoformat(text[:-1] + "Z" if text.endswith("z") else text)
    except ValueError as exc:
        raise _Rejected(RejectReason.INVALID_FIELD, "occurred_at: not a valid date and time") from exc
    return int(when.timestamp()) * 1000 + when.microsecond // 1000


def _attributes(attributes: dict[str, str] | None) -> dict[str, str] | None:
    """Free-form attributes, with phone and e-mail patterns redacted: PII is stored only as hashes."""
    if not attributes:
        return None
    return {k: redact_text(v) for k, v in attributes.items()}


def _record(event: dict[str, Any], cfg: IngestConfig, now_ms: int, received_ms: int) -> TouchpointRecord:
    occurred_ms = _ms(event["occurred_at"])
    if occurred_ms > now_ms + cfg.future_tolerance_ms:
        ahead = (occurred_ms - now_ms) / 1000
        raise _Rejected(
            RejectReason.FUTURE_TIMESTAMP,
            f"occurred_at is {ahead:.0f} s ahead of the pipeline clock",
        )
    identity = event["identity"]
    customer_id = identity.get("customer_id")
    if customer_id is not None:
        customer_id = customer_id.strip()
        if is_junk(customer_id, cfg.blocklist):
            customer_id = None
        elif customer_id.startswith("~"):
            raise _Rejected(
                RejectReason.INVALID_FIELD,
                "identity.customer_id: '~' prefix is reserved for anonymous keys",
            )
    identifiers = []
    for name, kind in IDENTIFIER_TYPES.items():
        value = identity.get(name)
        if value is None or is_junk(value, cfg.blocklist):
            continue
        try:
            if kind == "phone":
                value = hash_pii(cfg.pii_secret, kind, normalize_phone(value.strip(), cfg.region))
            elif kind == "email":
                value = hash_pii(cfg.pii_secret, kind, normalize_email(value))
            else:
                value = value.strip()
        except ValueError as exc:
            raise _Rejected(RejectReason.INVALID_FIELD, f"identity.{name}: {exc}") from None
        identifiers.append(f"{kind}:{value}")
    if customer_id is None and not identifiers:
        raise _Rejected(RejectReason.MISSING_IDENTITY, "identity: only placeholder identifiers")
    ctx = event.get("context")
    c = _NO_CONTEXT if not ctx else tuple(ctx.get(f) or None for f in _CONTEXT_FIELDS)
    m = event.get("metrics")
    v = _NO_METRICS if not m else tuple(m.get(f) for f in _METRIC_FIELDS)
    attributes = event.get("attributes")
    # Positional, in TouchpointRecord's field order (checked at import): keywords cost more.
    return _new_record(
        (
            event["event_id"],
            occurred_ms,
            received_ms,
            event["source"],
            event["channel"],
            event["event_type"],
            customer_id,
            tuple(identifiers),
            *c,
            *v,
            _attributes(attributes) if attributes else None,
            "",
        )
    )


def ingest(messages: Iterable[Message], cfg: IngestConfig, now_ms: int) -> IngestResult:
    """Validate a batch of messages with one schema call; every rejection is a dead letter."""
    out = IngestResult()
    candidates: list[_Candidate] = []
    for msg in messages:
        for cand in _unpack(msg, out, now_ms):
            try:
                _precheck(cand.event, cfg.blocklist)
            except _Rejected as rej:
                out.rejected.append(_reject(cand, rej, now_ms))
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
                raise _Rejected(RejectReason.INVALID_FIELD, _describe(errors))
            received = cand.message.timestamp_ms if cand.message.timestamp_ms > 0 else now_ms
            out.records.append(_record(cand.event, cfg, now_ms, received))
        except _Rejected as rej:
            out.rejected.append(_reject(cand, rej, now_ms))
    return out


def _reject(cand: _Candidate, rej: _Rejected, now_ms: int) -> DeadLetter:
    # A single-event message keeps its exact bytes; a batch element is re-encoded on its own.
    raw = (cand.message.value or b"") if cand.position < 0 else _encode(cand.event)
    return _dead(cand.message, max(cand.position, 0), rej.reason, rej.detail, raw, cand.event, now_ms)
