"""Stage 1, pure: Kafka messages in, validated touchpoint records and dead letters out."""

from __future__ import annotations

import hmac
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
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
from streams.domain.pii import (
    has_control,
    hash_pii,
    is_blank,
    is_junk,
    normalize_email,
    normalize_phone,
    pii_in_id,
    redact_label,
    redact_text,
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
# What every table's DateTime columns hold, on ClickHouse 18.16 and on current releases: seconds as an
# unsigned 32-bit number, 1970-01-01T00:00:00Z to 2106-02-07T06:28:15Z. Times outside are refused at
# ingest (occurred_at: invalid_field) or replaced (a Kafka timestamp: the receive time), never stored.
MAX_TIME_MS: Final = (2**32 - 1) * 1000
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
# No '@' and fewer than 7 digits: neither an e-mail address nor a phone number can hide in it (most ids).
_NO_PII: Final = re.compile(r"[^@\d]*(?:\d[^@\d]*){0,6}")


@dataclass(frozen=True, slots=True)
class IngestConfig:
    """What ingest needs from the settings."""

    pii_secret: bytes
    region: str = "CN"
    blocklist: frozenset[str] = frozenset()
    future_tolerance_ms: int = 300_000
    # Id fields allowed to keep a raw phone or e-mail (feeders who key customers by e-mail), e.g. customer_id.
    raw_id_fields: frozenset[str] = frozenset()


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
    # Kafka record timestamps no DateTime column holds, replaced by the receive time.
    replaced_timestamps: int = 0
    # id field -> how many of its values were a phone or e-mail and were stored as their hash.
    pii_hashed: dict[str, int] = field(default_factory=dict)


class _Candidate(NamedTuple):
    event: Any
    message: Message
    position: int  # in its batch envelope; -1 for a single-touchpoint message


class _Rejected(Exception):
    def __init__(self, reason: RejectReason, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


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
        found.append(_private(customer_id.strip(), "customer_id", cfg, None))
    for name, kind in IDENTIFIER_TYPES.items():
        value = identity.get(name)
        if not isinstance(value, str) or is_junk(value, cfg.blocklist):
            continue
        try:
            found.append(f"{kind}:{_identifier(name, kind, value, cfg, None)}")
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
                    _dead(msg, i, RejectReason.TOO_LARGE, "touchpoint over 64 KiB", encoded, event, cfg)
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
    if "events" in event and "event_id" not in event:
        raise _Rejected(RejectReason.INVALID_FIELD, "events: a batch element is one touchpoint; batches do not nest")
    version = event.get("schema_version")
    if isinstance(version, bool):  # JSON true is not the integer 1 (True == 1 in Python)
        raise _Rejected(RejectReason.INVALID_FIELD, f"schema_version: must be the integer 1, got {_kind(version)}")
    if isinstance(version, float):  # 1.0 is a number, not the integer the contract names
        raise _Rejected(RejectReason.INVALID_FIELD, f"schema_version: must be the integer 1, got {version!r}")
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
    if when < _EPOCH:
        raise _Rejected(
            RejectReason.INVALID_FIELD,
            "occurred_at: before 1970-01-01T00:00:00Z, the earliest time the tables can hold",
        )
    ms = int(when.timestamp()) * 1000 + when.microsecond // 1000
    if ms > MAX_TIME_MS:
        raise _Rejected(
            RejectReason.INVALID_FIELD,
            "occurred_at: after 2106-02-07T06:28:15Z, the latest time the tables can hold",
        )
    return ms


def _private(value: str, name: str, cfg: IngestConfig, counts: dict[str, int] | None) -> str:
    """An id as stored: a phone or e-mail in it becomes its keyed hash, unless the settings allow it raw."""
    if name in cfg.raw_id_fields or _NO_PII.fullmatch(value) is not None:
        return value
    found = pii_in_id(value, cfg.region)
    if found is None:
        return value
    kind, normal = found
    if counts is not None:
        counts[name] = counts.get(name, 0) + 1
    return f"{kind}:{hash_pii(cfg.pii_secret, kind, normal)}"


def _identifier(name: str, kind: str, value: str, cfg: IngestConfig, counts: dict[str, int] | None) -> str:
    """The value part of an identifier; ValueError when a phone or e-mail is not one."""
    if kind == "phone":
        return hash_pii(cfg.pii_secret, kind, normalize_phone(value.strip(), cfg.region))
    if kind == "email":
        return hash_pii(cfg.pii_secret, kind, normalize_email(value))
    return _private(value.strip(), name, cfg, counts)


def _checked_id(name: str, value: str) -> str:
    """`value` unless it holds a control character inside (surrounding whitespace is not part of an id)."""
    if has_control(value) and has_control(value.strip()):
        raise _Rejected(RejectReason.INVALID_FIELD, f"{name}: control characters are not allowed in an id")
    return value


def _attributes(attributes: dict[str, str] | None) -> dict[str, str] | None:
    """Free-form attributes, keys and values with phone and e-mail patterns redacted: PII is stored only as hashes."""
    if not attributes:
        return None
    out: dict[str, str] = {}
    for key, value in attributes.items():
        name = redact_text(key)
        if name in out:  # two keys redacted alike ("<phone>"): keep both, numbered in input order
            n = 2
            while f"{name}#{n}" in out:
                n += 1
            name = f"{name}#{n}"
        out[name] = redact_text(value)
    return out


def _record(
    event: dict[str, Any], cfg: IngestConfig, now_ms: int, received_ms: int, counts: dict[str, int]
) -> TouchpointRecord:
    event_id = _checked_id("event_id", event["event_id"])
    if is_blank(event_id):
        raise _Rejected(RejectReason.INVALID_FIELD, "event_id: must hold a visible character")
    source = _checked_id("source", event["source"])
    if is_blank(source):
        raise _Rejected(RejectReason.INVALID_FIELD, "source: must hold a visible character")
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
        else:
            customer_id = _private(_checked_id("identity.customer_id", customer_id), "customer_id", cfg, counts)
    identifiers = []
    for name, kind in IDENTIFIER_TYPES.items():
        value = identity.get(name)
        if value is None or is_junk(value, cfg.blocklist):
            continue
        try:
            if kind not in ("phone", "email"):  # those two are normalised, or rejected, as a whole
                _checked_id(f"identity.{name}", value)
            value = _identifier(name, kind, value, cfg, counts)
        except ValueError as exc:
            raise _Rejected(RejectReason.INVALID_FIELD, f"identity.{name}: {exc}") from None
        identifiers.append(f"{kind}:{value}")
    if customer_id is None and not identifiers:
        raise _Rejected(RejectReason.MISSING_IDENTITY, "identity: only placeholder identifiers")
    ctx = event.get("context")
    c = _NO_CONTEXT if not ctx else tuple(_context_id(f, ctx.get(f), cfg, counts) for f in _CONTEXT_FIELDS)
    m = event.get("metrics")
    v = _NO_METRICS if not m else tuple(m.get(f) for f in _METRIC_FIELDS)
    attributes = event.get("attributes")
    # Positional, in TouchpointRecord's field order (checked at import): keywords cost more.
    return _new_record(
        (
            _private(event_id, "event_id", cfg, counts),
            occurred_ms,
            received_ms,
            redact_label(source, cfg.region),
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


def _context_id(name: str, value: str | None, cfg: IngestConfig, counts: dict[str, int]) -> str | None:
    if not value or is_blank(value):
        return None
    return _private(_checked_id(f"context.{name}", value), name, cfg, counts)


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
                _precheck(cand.event, cfg.blocklist)
            except _Rejected as rej:
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
                raise _Rejected(RejectReason.INVALID_FIELD, _describe(errors))
            out.records.append(_record(cand.event, cfg, now_ms, cand.message.timestamp_ms, out.pii_hashed))
        except _Rejected as rej:
            out.rejected.append(_reject(cand, rej, cfg))
    return out


def _reject(cand: _Candidate, rej: _Rejected, cfg: IngestConfig) -> DeadLetter:
    # A single-event message keeps its exact bytes; a batch element is re-encoded on its own.
    raw = (cand.message.value or b"") if cand.position < 0 else _encode(cand.event)
    return _dead(cand.message, max(cand.position, 0), rej.reason, rej.detail, raw, cand.event, cfg)
