"""Stage 1, pure: Kafka messages in, validated touchpoint records and dead letters out.

The checks and the records are made by the native core (`cx_core.Ingest`, core/src/ingest.rs) in one
call per batch: every Contract 1 reason (docs/contract.md), times, ids with PII replaced by its keyed
hash, identifiers normalised. The core asks `streams.domain.pii` what depends on the Unicode database
or on phone-number metadata. This module configures the core and turns its rejections into dead
letters: pydantic words a wire-model refusal, orjson re-encodes a rejected batch element.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Final, NamedTuple

import cx_core
import orjson
from pydantic import ValidationError

from schemas.records import DeadLetter, RejectReason, TouchpointRecord
from schemas.touchpoint import touchpoints_adapter
from streams.domain import pii

__all__ = [
    "IDENTIFIER_TYPES",
    "MAX_TIME_MS",
    "IngestConfig",
    "IngestResult",
    "Message",
    "Routed",
    "ingest",
    "ingest_routed",
    "kafka_time_ms",
]

# identity field -> identifier type, in Contract 2's priority order (customer_id handled apart).
IDENTIFIER_TYPES: Final = dict(cx_core.IDENTIFIER_TYPES)
# What every table's DateTime columns hold, on ClickHouse 18.16 and on current releases: seconds as an
# unsigned 32-bit number, 1970-01-01T00:00:00Z to 2106-02-07T06:28:15Z. Times outside are refused at
# ingest (occurred_at: invalid_field) or replaced (a Kafka timestamp: the receive time), never stored.
MAX_TIME_MS: Final[int] = cx_core.MAX_TIME_MS
kafka_time_ms: Final = cx_core.kafka_time_ms
_MAX_DETAIL: Final = 1000


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


@lru_cache(maxsize=16)
def core(cfg: IngestConfig) -> cx_core.Ingest:
    """The native stage for these settings (made once per configuration)."""
    return cx_core.Ingest(
        cfg.pii_secret,
        cfg.region,
        cfg.blocklist,
        cfg.future_tolerance_ms,
        cfg.raw_id_fields,
        TouchpointRecord,
        pii,
        _encode,
    )


def ingest(messages: Iterable[Message], cfg: IngestConfig, now_ms: int) -> IngestResult:
    """Validate a batch of messages with one call into the core; every rejection is a dead letter."""
    batch = messages if isinstance(messages, list) else list(messages)
    stage = core(cfg)
    records, rejections, replaced, hashed = stage.ingest(batch, now_ms)
    return IngestResult(records, _dead_letters(batch, rejections, cfg, stage), replaced, hashed)


@dataclass(slots=True)
class Routed:
    """Stage 1's output for the stitch and claims topics, made in the core (records stay there)."""

    stitch: list[tuple[int, bytes, int]]  # (partition, message of items, items in it), first use first
    claims: bytes | None  # the claims message, when any touchpoint joins identifiers
    channels: list[tuple[str, int]]  # accepted touchpoints by channel
    rejected: list[DeadLetter] = field(default_factory=list)
    replaced_timestamps: int = 0
    pii_hashed: dict[str, int] = field(default_factory=dict)


def ingest_routed(
    messages: Iterable[Message], cfg: IngestConfig, now_ms: int, lookup: Callable[[str], str | None], partitions: int
) -> Routed:
    """`ingest`, then `streams.domain.routing.route` of its records and their encoding for the stitch and
    claims topics (`streams.domain.codec`), in one call: the same bytes, without Python records."""
    batch = messages if isinstance(messages, list) else list(messages)
    stage = core(cfg)
    stitch, claims, channels, rejections, replaced, hashed = stage.ingest_routed(batch, now_ms, lookup, partitions)
    return Routed(stitch, claims, channels, _dead_letters(batch, rejections, cfg, stage), replaced, hashed)


def _dead_letters(
    batch: list[Message], rejections: list[Any], cfg: IngestConfig, stage: cx_core.Ingest
) -> list[DeadLetter]:
    out = []
    for at, index, element, reason, detail, payload, received_ms in rejections:
        msg = batch[at]
        if msg.timestamp_ms != received_ms:
            msg = msg._replace(timestamp_ms=received_ms)
        # A whole message or single-event message keeps its exact bytes; a batch element is re-encoded.
        raw = _encode(payload) if element else (msg.value or b"")
        why = detail if detail is not None else _model_detail(payload)
        out.append(_dead(msg, index, RejectReason(reason), why, raw, payload, cfg, stage))
    return out


def describe(errors: Sequence[Any]) -> str:
    """pydantic's errors of one touchpoint, the first three, as a dead letter's detail."""
    parts = []
    for err in errors[:3]:
        loc = ".".join(str(p) for p in err["loc"][1:]) or "touchpoint"
        parts.append(f"{loc}: {err['msg']}")
    more = f" (+{len(errors) - 3} more)" if len(errors) > 3 else ""
    return "; ".join(parts) + more


def _model_detail(event: Any) -> str:
    """What the wire model (`schemas.touchpoint.Touchpoint`) says is wrong with a touchpoint the core refused."""
    try:
        touchpoints_adapter.validate_python([event])
    except ValidationError as exc:
        return describe(exc.errors(include_url=False, include_input=False, include_context=False))
    return "touchpoint: does not match the touchpoint schema"


def _subjects(event: Any, cfg: IngestConfig, stage: cx_core.Ingest) -> tuple[str, ...]:
    """Whom a rejected payload names, as the pipeline keys them (best effort: it may be malformed)."""
    identity = event.get("identity") if isinstance(event, dict) else None
    if not isinstance(identity, dict):
        return ()
    found = []
    customer_id = identity.get("customer_id")
    if isinstance(customer_id, str) and not pii.is_junk(customer_id, cfg.blocklist):
        found.append(stage.stored_id(customer_id.strip(), "customer_id"))
    for name, kind in IDENTIFIER_TYPES.items():
        value = identity.get(name)
        if not isinstance(value, str) or pii.is_junk(value, cfg.blocklist):
            continue
        try:
            found.append(f"{kind}:{stage.identifier_value(name, kind, value)}")
        except ValueError:
            continue
    return tuple(found)


def _dead(
    msg: Message,
    index: int,
    reason: RejectReason,
    detail: str,
    raw: bytes,
    event: Any,
    cfg: IngestConfig,
    stage: cx_core.Ingest,
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
        subjects=_subjects(event, cfg, stage),
    )


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
