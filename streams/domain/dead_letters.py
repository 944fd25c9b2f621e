"""Dead-letter rows for `cx.dead_letters`: the payload with PII redacted, at most 64 KiB, and its identity."""

from __future__ import annotations

import hashlib
import json
from typing import Any, Final

import orjson

from schemas.records import DeadLetter, RejectReason
from schemas.rows import DeadLetterRow, Table
from streams.domain.pii import redact, redact_label, redact_text

__all__ = ["ROW_RAW_MAX", "SINK_TOPIC_PREFIX", "bare_dead_letter", "dead_letter_row", "refused_row"]

# The `topic` of a dead letter for a row ClickHouse refused: `sink:<table>` (no Kafka offset to point at).
SINK_TOPIC_PREFIX: Final = "sink:"
_MAX_DETAIL: Final = 1000
_NO_REGION: Final = "ZZ"  # phonenumbers' unknown region: only numbers written with a country code count

ROW_RAW_MAX: Final = 64 * 1024
# A phone or e-mail pattern spans under 400 bytes, which redaction and U+FFFD widen at most 3x.
_ROW_RAW_SLACK: Final = 4096
# Fields whose whole value is PII by the contract, whatever it looks like ("13900001111abc" is
# rejected as a phone, and must not be stored as one either).
_PII_KEYS: Final = {"phone": "<phone>", "email": "<email>"}
# Deeper documents are redacted as text (orjson reads 1024 levels; the walk below stays shallow).
_MAX_WALK_DEPTH: Final = 128


class _TooDeep(Exception):
    pass


def _walk(value: Any, depth: int) -> Any:
    if depth > _MAX_WALK_DEPTH:
        raise _TooDeep
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            placeholder = _PII_KEYS.get(key)
            if placeholder is not None and item is not None and not isinstance(item, (dict, list, bool)):
                item = placeholder
            else:
                item = _walk(item, depth + 1)
            out[redact_text(key)] = item
        return out
    if isinstance(value, list):
        return [_walk(item, depth + 1) for item in value]
    return value  # numbers, booleans, null


def _redact_json(raw: bytes) -> bytes | None:
    """A JSON payload without phones and e-mails; None when it is not JSON (or too deep to walk).

    Decoded, every `phone` and `email` value replaced by a placeholder, every other string and key
    redacted by pattern, and encoded again: escapes (`\\u0040`, `\\u002d`) are resolved first, so an
    address spelled with them is found, and the stored text says what the feeder meant.
    """
    try:
        return orjson.dumps(_walk(orjson.loads(raw), 0))
    except (orjson.JSONDecodeError, orjson.JSONEncodeError, _TooDeep, RecursionError):
        return None


def _row_raw(raw: bytes) -> str:
    """The payload with PII redacted, at most 64 KiB of UTF-8 (the contract's `dead_letters.raw`).

    Redacting before cutting: cutting first left half an address behind (`alice@exam`) that no
    pattern matched. JSON is redacted whole (8 MiB at most); other text is redacted by pattern as
    bytes, read a little past the
    limit, and further only when redaction shrank it, so a pattern cut at its end never reaches the
    first 64 KiB.
    """
    redacted = _redact_json(raw)
    if redacted is not None:
        return redacted[:ROW_RAW_MAX].decode("utf-8", "ignore")
    size = ROW_RAW_MAX + _ROW_RAW_SLACK
    while True:
        text = redact(raw[:size]).decode("utf-8", "replace").encode()
        if size >= len(raw) or len(text) >= ROW_RAW_MAX + _ROW_RAW_SLACK // 2:
            return text[:ROW_RAW_MAX].decode("utf-8", "ignore")
        size *= 2


def dead_letter_row(d: DeadLetter) -> DeadLetterRow:
    """The stored form of a rejection; `event_id`, `source` and `channel` are redacted like the payload."""
    return DeadLetterRow(
        received_at=d.received_ms // 1000,
        topic=d.topic,
        partition=d.partition,
        offset=d.offset,
        idx=d.index,
        reason=d.reason.value,
        detail=redact_text(d.detail),
        raw=_row_raw(d.raw),
        event_id=redact_text(d.event_id),
        source=redact_text(d.source),
        channel=redact_text(d.channel),
        payload_hash=d.payload_hash,
        subjects=list(d.subjects),
    )


def _sink_letter(
    table: str, what: str, error: str, raw: str, payload_hash: str, now_ms: int, fields: dict[str, str]
) -> DeadLetterRow:
    """A dead letter written by the sink itself (`topic = 'sink:<table>'`): no Kafka offset to point at."""
    return DeadLetterRow(
        received_at=now_ms // 1000,
        topic=SINK_TOPIC_PREFIX + table,
        partition=0,
        offset=0,
        idx=0,
        reason=RejectReason.INVALID_FIELD.value,
        # The rows hold hashes, not PII; the server's message keeps its numbers (only e-mails and
        # international numbers are taken out), so "0 <= number <= 4294967295" stays readable.
        detail=redact_label(f"ClickHouse refused {what}: {error}", _NO_REGION)[:_MAX_DETAIL],
        raw=raw,
        event_id=fields.get("event_id", ""),
        source=fields.get("source", ""),
        channel=fields.get("channel", ""),
        payload_hash=payload_hash,
        subjects=[fields["customer_key"]] if fields.get("customer_key") else [],
    )


def refused_row(table: str, row: tuple[Any, ...], error: str, now_ms: int) -> DeadLetterRow:
    """A dead letter for a row ClickHouse refused for good: the row as JSON, the server's reason.

    The rows hold no raw PII (ingest hashed it), and are redacted again like any payload; the payload
    hash is the row's own, so the same refusal replayed after a crash is stored once.
    """
    names = getattr(row, "_fields", None)
    doc: Any = dict(zip(names, row, strict=True)) if names else list(row)
    # The standard encoder: a refused row may hold what orjson will not write (integers over 64 bits).
    raw = json.dumps(doc, default=str, ensure_ascii=False).encode("utf-8", "surrogatepass")
    fields = {}
    if isinstance(doc, dict):
        for name in ("event_id", "source", "channel", "customer_key"):
            value = doc.get(name)
            if isinstance(value, str):
                fields[name] = redact_text(value[:128])
    digest = hashlib.blake2b(raw, digest_size=16).hexdigest()
    return _sink_letter(table, f"this {table} row", error, _row_raw(raw), digest, now_ms, fields)


def bare_dead_letter(row: tuple[Any, ...], error: str, now_ms: int) -> DeadLetterRow:
    """What is left of a dead-letter row ClickHouse refused: that it happened, and why."""
    digest = hashlib.blake2b(repr(row).encode("utf-8", "backslashreplace"), digest_size=16).hexdigest()
    return _sink_letter(Table.DEAD_LETTERS, "a dead letter", error, "", digest, now_ms, {})
