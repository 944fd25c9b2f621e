"""Reference model of one touchpoint's checks and record (the Python implementation the native core replaced)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any, Final

from schemas.records import RejectReason, TouchpointRecord
from schemas.touchpoint import CHANNELS, IDENTITY_FIELDS
from streams.domain.ingest import IngestConfig, describe
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
    "Rejected",
    "describe",
    "identifier",
    "kind_of",
    "precheck",
    "private_id",
    "record",
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
# What every table's DateTime columns hold, on ClickHouse 18.16 and on current releases: seconds as an
# unsigned 32-bit number, 1970-01-01T00:00:00Z to 2106-02-07T06:28:15Z. Times outside are refused at
# ingest (occurred_at: invalid_field) or replaced (a Kafka timestamp: the receive time), never stored.
MAX_TIME_MS: Final = (2**32 - 1) * 1000
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
# No '@' and fewer than 7 digits: neither an e-mail address nor a phone number can hide in it (most ids).
_NO_PII: Final = re.compile(r"[^@\d]*(?:\d[^@\d]*){0,6}")


class Rejected(Exception):
    """A touchpoint refused, with the contract's reason and a detail for its dead letter."""

    def __init__(self, reason: RejectReason, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def kind_of(value: Any) -> str:
    return {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(type(value), "a number")


def precheck(event: Any, blocklist: frozenset[str]) -> None:
    """The specific reasons, checked before generic validation so they win over invalid_field."""
    if not isinstance(event, dict):
        raise Rejected(RejectReason.NOT_AN_OBJECT, f"a touchpoint is a JSON object, got {kind_of(event)}")
    if "events" in event and "event_id" not in event:
        raise Rejected(RejectReason.INVALID_FIELD, "events: a batch element is one touchpoint; batches do not nest")
    version = event.get("schema_version")
    if isinstance(version, bool):  # JSON true is not the integer 1 (True == 1 in Python)
        raise Rejected(RejectReason.INVALID_FIELD, f"schema_version: must be the integer 1, got {kind_of(version)}")
    if isinstance(version, float):  # 1.0 is a number, not the integer the contract names
        raise Rejected(RejectReason.INVALID_FIELD, f"schema_version: must be the integer 1, got {version!r}")
    if isinstance(version, int) and version != 1:
        raise Rejected(
            RejectReason.UNSUPPORTED_SCHEMA_VERSION,
            f"schema_version {version}; this pipeline reads 1",
        )
    channel = event.get("channel")
    if isinstance(channel, str) and channel not in _CHANNELS:
        raise Rejected(
            RejectReason.UNKNOWN_CHANNEL,
            f"channel {channel[:40]!r} is not one of {', '.join(CHANNELS)}",
        )
    identity = event.get("identity")
    if identity is None or identity == {}:
        raise Rejected(RejectReason.MISSING_IDENTITY, "identity: at least one identifier is required")
    if isinstance(identity, dict):
        values = [identity.get(f) for f in IDENTITY_FIELDS]
        if all(v is None or (isinstance(v, str) and is_junk(v, blocklist)) for v in values):
            raise Rejected(
                RejectReason.MISSING_IDENTITY,
                "identity: no usable identifier (empty or placeholder values such as null, 0, -1)",
            )


def _ms(text: str) -> int:
    try:
        # RFC 3339 allows a lower-case 'z'; Python 3.11's parser only takes 'Z'.
        when = datetime.fromisoformat(text[:-1] + "Z" if text.endswith("z") else text)
    except ValueError as exc:
        raise Rejected(RejectReason.INVALID_FIELD, "occurred_at: not a valid date and time") from exc
    if when < _EPOCH:
        raise Rejected(
            RejectReason.INVALID_FIELD,
            "occurred_at: before 1970-01-01T00:00:00Z, the earliest time the tables can hold",
        )
    ms = int(when.timestamp()) * 1000 + when.microsecond // 1000
    if ms > MAX_TIME_MS:
        raise Rejected(
            RejectReason.INVALID_FIELD,
            "occurred_at: after 2106-02-07T06:28:15Z, the latest time the tables can hold",
        )
    return ms


def private_id(value: str, name: str, cfg: IngestConfig, counts: dict[str, int] | None) -> str:
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


def identifier(name: str, kind: str, value: str, cfg: IngestConfig, counts: dict[str, int] | None) -> str:
    """The value part of an identifier; ValueError when a phone or e-mail is not one."""
    if kind == "phone":
        return hash_pii(cfg.pii_secret, kind, normalize_phone(value.strip(), cfg.region))
    if kind == "email":
        return hash_pii(cfg.pii_secret, kind, normalize_email(value))
    return private_id(value.strip(), name, cfg, counts)


def _checked_id(name: str, value: str) -> str:
    """`value` unless it holds a control character inside (surrounding whitespace is not part of an id)."""
    if has_control(value) and has_control(value.strip()):
        raise Rejected(RejectReason.INVALID_FIELD, f"{name}: control characters are not allowed in an id")
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


def record(
    event: dict[str, Any], cfg: IngestConfig, now_ms: int, received_ms: int, counts: dict[str, int]
) -> TouchpointRecord:
    event_id = _checked_id("event_id", event["event_id"])
    if is_blank(event_id):
        raise Rejected(RejectReason.INVALID_FIELD, "event_id: must hold a visible character")
    source = _checked_id("source", event["source"])
    if is_blank(source):
        raise Rejected(RejectReason.INVALID_FIELD, "source: must hold a visible character")
    occurred_ms = _ms(event["occurred_at"])
    if occurred_ms > now_ms + cfg.future_tolerance_ms:
        ahead = (occurred_ms - now_ms) / 1000
        raise Rejected(
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
            raise Rejected(
                RejectReason.INVALID_FIELD,
                "identity.customer_id: '~' prefix is reserved for anonymous keys",
            )
        else:
            customer_id = private_id(_checked_id("identity.customer_id", customer_id), "customer_id", cfg, counts)
    identifiers = []
    for name, kind in IDENTIFIER_TYPES.items():
        value = identity.get(name)
        if value is None or is_junk(value, cfg.blocklist):
            continue
        try:
            if kind not in ("phone", "email"):  # those two are normalised, or rejected, as a whole
                _checked_id(f"identity.{name}", value)
            value = identifier(name, kind, value, cfg, counts)
        except ValueError as exc:
            raise Rejected(RejectReason.INVALID_FIELD, f"identity.{name}: {exc}") from None
        identifiers.append(f"{kind}:{value}")
    if customer_id is None and not identifiers:
        raise Rejected(RejectReason.MISSING_IDENTITY, "identity: only placeholder identifiers")
    ctx = event.get("context")
    c = _NO_CONTEXT if not ctx else tuple(_context_id(f, ctx.get(f), cfg, counts) for f in _CONTEXT_FIELDS)
    m = event.get("metrics")
    v = _NO_METRICS if not m else tuple(m.get(f) for f in _METRIC_FIELDS)
    attributes = event.get("attributes")
    # Positional, in TouchpointRecord's field order (checked at import): keywords cost more.
    return _new_record(
        (
            private_id(event_id, "event_id", cfg, counts),
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
    return private_id(_checked_id(f"context.{name}", value), name, cfg, counts)
