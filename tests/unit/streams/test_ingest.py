"""Contract 1 at the ingest stage: validation, the eight rejection reasons, batches, size limits, PII."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from schemas.records import RejectReason
from schemas.touchpoint import MAX_BATCH_BYTES, MAX_BATCH_EVENTS, MAX_EVENT_BYTES
from streams.domain.codec import Item, encode_items
from streams.domain.dead_letters import dead_letter_row
from streams.domain.ingest import IngestConfig, IngestResult, Message, ingest
from streams.domain.pii import hash_pii
from tests.factories import SECRET, T0, touchpoint

CFG = IngestConfig(SECRET, "CN", frozenset({"null", "0"}))
NOW = T0 + timedelta(hours=1)
NOW_MS = int(NOW.timestamp() * 1000)
_DELETE = object()


def _bytes(payload: Any) -> bytes:
    return payload if isinstance(payload, bytes) else orjson.dumps(payload)


def run(*payloads: Any, cfg: IngestConfig = CFG, now_ms: int = NOW_MS) -> IngestResult:
    messages = [Message(_bytes(p), "cx.touchpoints", 0, i, 0) for i, p in enumerate(payloads)]
    return ingest(messages, cfg, now_ms)


def reasons(result: IngestResult) -> list[str]:
    return [d.reason.value for d in result.rejected]


def mutated(path: tuple[str, ...], value: Any, **kwargs: Any) -> dict[str, Any]:
    """A valid touchpoint with one field at `path` set to `value` (or removed)."""
    event = touchpoint(**kwargs)
    node = event
    for part in path[:-1]:
        node = node.setdefault(part, {})
    if value is _DELETE:
        node.pop(path[-1], None)
    else:
        node[path[-1]] = value
    return event


def event_of_size(size: int, **kwargs: Any) -> dict[str, Any]:
    """A valid touchpoint whose compact JSON encoding is exactly `size` bytes."""
    keys = [f"p{i:02d}" for i in range(20)]
    event = touchpoint(attributes=dict.fromkeys(keys, ""), **kwargs)
    needed = size - len(orjson.dumps(event))
    q, r = divmod(needed, len(keys))
    event["attributes"] = {k: "x" * (q + (1 if i < r else 0)) for i, k in enumerate(keys)}
    assert len(orjson.dumps(event)) == size
    return event


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat()


# --- accepted ------------------------------------------------------------------------------------


def test_a_valid_touchpoint_becomes_one_record_with_its_fields() -> None:
    event = touchpoint(
        "contact_ended",
        channel="phone",
        context={"case_id": "K1", "contact_id": "c1", "order_id": "O1"},
        metrics={"wait_seconds": 75, "transfers": 2, "handled_by": "human", "resolved": False, "csat": 2},
        attributes={"queue": "billing"},
    )
    result = run(event)
    assert result.rejected == []
    [rec] = result.records
    assert (rec.event_id, rec.channel, rec.event_type, rec.customer_id) == (
        event["event_id"],
        "phone",
        "contact_ended",
        "C1",
    )
    assert rec.occurred_ms == int(T0.timestamp() * 1000)
    assert (rec.case_id, rec.contact_id, rec.order_id) == ("K1", "c1", "O1")
    assert (rec.wait_seconds, rec.transfers, rec.handled_by, rec.resolved, rec.csat) == (
        75,
        2,
        "human",
        False,
        2,
    )
    assert rec.attributes == {"queue": "billing"}


def test_occurred_at_with_an_offset_is_read_as_that_instant() -> None:
    event = touchpoint(occurred_at="2026-11-20T10:11:12.123+08:00")
    [rec] = run(event, now_ms=NOW_MS + 30 * 86_400_000).records
    expected = datetime(2026, 11, 20, 2, 11, 12, 123_000, tzinfo=UTC)
    assert rec.occurred_ms == int(expected.timestamp() * 1000)


def test_lower_case_z_offset_is_accepted_as_rfc_3339() -> None:
    result = run(touchpoint(occurred_at="2026-11-01T09:00:00z"))
    assert result.rejected == []
    assert result.records[0].occurred_ms == int(T0.timestamp() * 1000)


def test_received_time_is_the_kafka_timestamp_else_the_pipeline_clock() -> None:
    raw = orjson.dumps(touchpoint())
    stamped = ingest([Message(raw, "cx.touchpoints", 0, 0, NOW_MS - 5000)], CFG, NOW_MS).records[0]
    unstamped = ingest([Message(raw, "cx.touchpoints", 0, 0, 0)], CFG, NOW_MS).records[0]
    assert (stamped.received_ms, unstamped.received_ms) == (NOW_MS - 5000, NOW_MS)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("csat", 1),
        ("csat", 5),
        ("nps", 0),
        ("nps", 10),
        ("ces", 1),
        ("ces", 7),
        ("rating", 1),
        ("rating", 5),
        ("sentiment", -1),
        ("sentiment", 1.0),
        ("wait_seconds", 0),
        ("wait_seconds", 12.5),
        ("transfers", 0),
    ],
)
def test_metric_range_bounds_are_accepted(field: str, value: Any) -> None:
    result = run(touchpoint(metrics={field: value}))
    assert reasons(result) == []
    assert getattr(result.records[0], field) == value


def test_unknown_lowercase_event_type_slug_is_stored() -> None:
    result = run(touchpoint("loyalty_points_added"))
    assert reasons(result) == []
    assert result.records[0].event_type == "loyalty_points_added"


# --- the eight rejection reasons ----------------------------------------------------------------


@pytest.mark.parametrize(
    "payload",
    [b"{broken", b"", b"\xff\xfe{}", b'{"a": 1} trailing', b"{'single': 'quotes'}"],
    ids=["truncated", "empty", "not-utf8", "trailing", "single-quotes"],
)
def test_invalid_json(payload: bytes) -> None:
    assert reasons(run(payload)) == ["invalid_json"]


@pytest.mark.parametrize(
    "payload",
    [[], [touchpoint()], "text", 42, None, True],
    ids=["array", "array-of-touchpoints", "string", "number", "null", "boolean"],
)
def test_not_an_object(payload: Any) -> None:
    assert reasons(run(payload)) == ["not_an_object"]


@pytest.mark.parametrize(
    "identity",
    [
        _DELETE,
        {},
        None,
        {"customer_id": ""},
        {"customer_id": None, "anonymous_id": None},
        {"customer_id": "   "},
        {"customer_id": "null", "anonymous_id": "0", "device_id": "0000", "phone": "00000000"},
        {"device_id": "00000000-0000-0000-0000-000000000000"},
    ],
    ids=["absent", "empty", "null", "empty-string", "all-null", "blank", "placeholders", "zero-uuid"],
)
def test_missing_identity(identity: Any) -> None:
    assert reasons(run(mutated(("identity",), identity))) == ["missing_identity"]


@pytest.mark.parametrize("channel", ["fax", "WEB", "Web", "telegram", ""])
def test_unknown_channel(channel: str) -> None:
    assert reasons(run(touchpoint(channel=channel))) == ["unknown_channel"]


@pytest.mark.parametrize("version", [0, 2, 99])
def test_unsupported_schema_version(version: int) -> None:
    assert reasons(run(mutated(("schema_version",), version))) == ["unsupported_schema_version"]


INVALID_FIELDS = {
    "csat-0": (("metrics", "csat"), 0),
    "csat-6": (("metrics", "csat"), 6),
    "csat-string": (("metrics", "csat"), "3"),
    "csat-float": (("metrics", "csat"), 3.5),
    "nps-neg": (("metrics", "nps"), -1),
    "nps-11": (("metrics", "nps"), 11),
    "ces-0": (("metrics", "ces"), 0),
    "ces-8": (("metrics", "ces"), 8),
    "rating-0": (("metrics", "rating"), 0),
    "rating-6": (("metrics", "rating"), 6),
    "sentiment-low": (("metrics", "sentiment"), -1.01),
    "sentiment-high": (("metrics", "sentiment"), 1.01),
    "wait-neg": (("metrics", "wait_seconds"), -1),
    "transfers-neg": (("metrics", "transfers"), -1),
    "transfers-bool": (("metrics", "transfers"), True),
    "handled-by-other": (("metrics", "handled_by"), "robot"),
    "resolved-string": (("metrics", "resolved"), "true"),
    "currency-lower": (("metrics", "currency"), "cny"),
    "metrics-extra": (("metrics", "mood"), 1),
    "context-extra": (("context", "ticket"), "t1"),
    "identity-extra": (("identity", "passport"), "X1"),
    "top-level-extra": (("color",), "red"),
    "event-id-missing": (("event_id",), _DELETE),
    "event-id-empty": (("event_id",), ""),
    "event-id-129": (("event_id",), "e" * 129),
    "source-missing": (("source",), _DELETE),
    "event-type-missing": (("event_type",), _DELETE),
    "event-type-upper": (("event_type",), "Page_View"),
    "event-type-dash": (("event_type",), "page-view"),
    "event-type-one-char": (("event_type",), "a"),
    "occurred-at-missing": (("occurred_at",), _DELETE),
    "occurred-at-naive": (("occurred_at",), "2026-11-01T09:00:00"),
    "occurred-at-date-only": (("occurred_at",), "2026-11-01"),
    "occurred-at-epoch": (("occurred_at",), 1793523600),
    "occurred-at-impossible": (("occurred_at",), "2026-02-30T09:00:00Z"),
    "schema-version-string": (("schema_version",), "1"),
    "identity-not-object": (("identity",), ["C1"]),
    "customer-id-number": (("identity", "customer_id"), 12345),
    "customer-id-reserved-prefix": (("identity", "customer_id"), "~anon:a1"),
    "phone-not-a-number": (("identity", "phone"), "call me maybe"),
    "phone-too-short": (("identity", "phone"), "12"),
    "email-not-an-address": (("identity", "email"), "alice at example"),
    "attributes-33-keys": (("attributes",), {f"k{i}": "v" for i in range(33)}),
    "attribute-not-string": (("attributes",), {"k": 1}),
}


@pytest.mark.parametrize(("path", "value"), INVALID_FIELDS.values(), ids=INVALID_FIELDS.keys())
def test_invalid_field(path: tuple[str, ...], value: Any) -> None:
    result = run(mutated(path, value))
    assert reasons(result) == ["invalid_field"]
    assert result.records == []


def test_a_boolean_schema_version_is_invalid_field() -> None:
    assert reasons(run(mutated(("schema_version",), True))) == ["invalid_field"]


def test_attributes_at_the_32_key_limit_are_accepted() -> None:
    assert reasons(run(touchpoint(attributes={f"k{i}": "v" for i in range(32)}))) == []


@pytest.mark.parametrize(
    ("ahead_ms", "tolerance_ms", "rejected"),
    [
        (0, 300_000, False),
        (300_000, 300_000, False),
        (300_001, 300_000, True),
        (86_400_000, 300_000, True),
        (1, 0, True),
    ],
)
def test_future_timestamp_is_more_than_the_tolerance_ahead_of_the_clock(
    ahead_ms: int, tolerance_ms: int, rejected: bool
) -> None:
    cfg = IngestConfig(SECRET, "CN", frozenset(), future_tolerance_ms=tolerance_ms)
    result = run(touchpoint(occurred_at=iso(NOW_MS + ahead_ms)), cfg=cfg)
    assert reasons(result) == (["future_timestamp"] if rejected else [])


def test_future_timestamp_tolerance_defaults_to_five_minutes() -> None:
    assert IngestConfig(SECRET).future_tolerance_ms == 5 * 60 * 1000


# --- size limits --------------------------------------------------------------------------------


def test_one_touchpoint_of_exactly_64_kib_is_accepted_and_one_byte_more_is_too_large() -> None:
    at_limit = event_of_size(MAX_EVENT_BYTES)
    over = event_of_size(MAX_EVENT_BYTES + 1)
    assert MAX_EVENT_BYTES == 64 * 1024
    assert reasons(run(at_limit)) == []
    assert reasons(run(over)) == ["too_large"]


def test_a_batch_of_1000_is_accepted_and_of_1001_is_too_large_as_a_whole() -> None:
    assert MAX_BATCH_EVENTS == 1000
    full = run({"events": [touchpoint() for _ in range(1000)]})
    assert (len(full.records), full.rejected) == (1000, [])
    over = run({"events": [touchpoint() for _ in range(1001)]})
    assert (over.records, reasons(over)) == ([], ["too_large"])


def test_a_batch_over_8_mib_is_too_large_even_when_each_touchpoint_fits() -> None:
    assert MAX_BATCH_BYTES == 8 * 1024 * 1024
    fixed = [event_of_size(MAX_EVENT_BYTES) for _ in range(127)]
    room = MAX_BATCH_BYTES - len(orjson.dumps({"events": fixed})) - 1  # one comma before the last
    at_limit = {"events": [*fixed, event_of_size(room)]}
    assert len(orjson.dumps(at_limit)) == MAX_BATCH_BYTES
    accepted = run(at_limit)
    assert (len(accepted.records), accepted.rejected) == (128, [])

    over = {"events": [*fixed, event_of_size(room + 1)]}
    result = run(over)
    assert (result.records, reasons(result)) == ([], ["too_large"])


def test_a_touchpoint_over_64_kib_inside_a_batch_rejects_only_that_touchpoint() -> None:
    small = [touchpoint(), touchpoint()]
    big = event_of_size(MAX_EVENT_BYTES + 1)
    result = run({"events": [small[0], big, small[1]]})
    assert [r.event_id for r in result.records] == [e["event_id"] for e in small]
    [dead] = result.rejected
    assert (dead.reason, dead.index, dead.event_id) == (RejectReason.TOO_LARGE, 1, big["event_id"])


# --- batches and isolation ----------------------------------------------------------------------


def test_one_bad_event_inside_a_batch_rejects_only_that_event() -> None:
    good = [touchpoint(), touchpoint(), touchpoint()]
    bad = {
        1: mutated(("metrics", "csat"), 9),
        3: touchpoint(channel="fax"),
        4: "not an object",
        5: mutated(("identity",), {}),
    }
    events: list[Any] = [good[0], bad[1], good[1], bad[3], bad[4], bad[5], good[2]]
    result = run({"events": events})
    assert [r.event_id for r in result.records] == [e["event_id"] for e in good]
    assert sorted((d.index, d.reason.value) for d in result.rejected) == [
        (1, "invalid_field"),
        (3, "unknown_channel"),
        (4, "not_an_object"),
        (5, "missing_identity"),
    ]


def test_a_rejected_batch_element_keeps_its_own_payload_for_replay() -> None:
    bad = mutated(("metrics", "nps"), 42)
    result = run({"events": [touchpoint(), bad]})
    [dead] = result.rejected
    assert orjson.loads(dead.raw) == bad
    assert (dead.event_id, dead.source, dead.channel) == (bad["event_id"], "test", "web")


def test_a_rejected_single_message_keeps_its_exact_bytes() -> None:
    raw = b'{ "event_id": "x",  "identity": {} }'
    result = ingest([Message(raw, "cx.touchpoints", 3, 42, 1_000)], CFG, NOW_MS)
    [dead] = result.rejected
    assert (dead.raw, dead.topic, dead.partition, dead.offset, dead.received_ms) == (
        raw,
        "cx.touchpoints",
        3,
        42,
        1_000,
    )


@pytest.mark.parametrize(
    "envelope",
    [{"events": []}, {"events": "x"}, {"events": [touchpoint()], "source": "x"}],
    ids=["empty", "not-array", "extra-key"],
)
def test_a_malformed_batch_envelope_is_invalid_field(envelope: dict[str, Any]) -> None:
    result = run(envelope)
    assert (result.records, reasons(result)) == ([], ["invalid_field"])


def test_one_bad_message_never_stops_the_rest_and_order_is_kept() -> None:
    first, second, third = touchpoint(), touchpoint(), touchpoint()
    result = run(first, b"{broken", {"events": [second, {"x": 1}]}, [1], third)
    assert [r.event_id for r in result.records] == [first["event_id"], second["event_id"], third["event_id"]]
    assert sorted(reasons(result)) == ["invalid_json", "missing_identity", "not_an_object"]


def test_every_rejection_reason_is_a_contract_reason() -> None:
    payloads: list[Any] = [
        b"{",
        [],
        mutated(("identity",), {}),
        touchpoint(channel="fax"),
        mutated(("metrics", "csat"), 0),
        touchpoint(occurred_at=iso(NOW_MS + 3_600_000)),
        event_of_size(MAX_EVENT_BYTES + 1),
        mutated(("schema_version",), 2),
    ]
    result = run(*payloads)
    assert set(reasons(result)) == {r.value for r in RejectReason}
    assert len(result.rejected) == len(payloads)


# --- identity and PII ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "phone",
    [
        "13800138000",
        "138 0013 8000",
        "+86 138 0013 8000",
        "+86-138-0013-8000",
        "008613800138000",
        " 13800138000 ",
    ],
)
def test_phone_is_normalised_to_e164_in_the_default_region_and_hashed(phone: str) -> None:
    [rec] = run(touchpoint(identity={"phone": phone})).records
    assert rec.identifiers == (f"phone:{hash_pii(SECRET, 'phone', '+8613800138000')}",)


def test_the_default_region_is_configurable() -> None:
    cfg = IngestConfig(SECRET, "US", frozenset())
    [rec] = run(touchpoint(identity={"phone": "(201) 555-0123"}), cfg=cfg).records
    assert rec.identifiers == (f"phone:{hash_pii(SECRET, 'phone', '+12015550123')}",)


@pytest.mark.parametrize("email", ["alice.smith@example.com", "  Alice.Smith@Example.COM ", "ALICE.SMITH@EXAMPLE.COM"])
def test_email_is_trimmed_lower_cased_and_hashed(email: str) -> None:
    [rec] = run(touchpoint(identity={"email": email})).records
    assert rec.identifiers == (f"email:{hash_pii(SECRET, 'email', 'alice.smith@example.com')}",)


def test_the_hash_is_keyed_by_the_configured_secret() -> None:
    event = touchpoint(identity={"phone": "13800138000", "email": "a@example.com"})
    one = run(event).records[0].identifiers
    other = run(event, cfg=IngestConfig(b"another-secret-0123456789", "CN")).records[0].identifiers
    assert set(one).isdisjoint(other)


def test_raw_phone_and_email_never_appear_in_the_record() -> None:
    event = touchpoint(identity={"customer_id": "C1", "phone": "+86 138-0013-8000", "email": "Alice@Example.com"})
    [rec] = run(event).records
    wire = encode_items([Item("tp", "C1", rec)])  # what the internal stitch topic carries
    for needle in ("13800138000", "138-0013-8000", "alice@example.com", "Alice@Example.com"):
        assert needle not in repr(rec)
        assert needle.encode() not in wire


def test_identifiers_follow_contract_priority_and_placeholders_are_dropped() -> None:
    identity = {
        "wechat_openid": "wx-1",
        "email": "a@example.com",
        "phone": "0",
        "device_id": "null",
        "anonymous_id": "anon-1",
        "customer_id": " C1 ",
    }
    [rec] = run(touchpoint(identity=identity)).records
    assert rec.customer_id == "C1"
    assert [i.split(":", 1)[0] for i in rec.identifiers] == ["anon", "email", "wechat"]
    assert rec.identifiers[0] == "anon:anon-1"


def test_a_placeholder_customer_id_is_dropped_and_the_touchpoint_stays_anonymous() -> None:
    [rec] = run(touchpoint(identity={"customer_id": "null", "anonymous_id": "a-1"})).records
    assert (rec.customer_id, rec.identifiers) == (None, ("anon:a-1",))


def test_an_invalid_phone_rejects_without_echoing_it() -> None:
    result = run(touchpoint(identity={"customer_id": "C1", "phone": "555-CALL-ME-NOW-PLEASE"}))
    [dead] = result.rejected
    assert dead.reason == RejectReason.INVALID_FIELD
    assert "identity.phone" in dead.detail
    assert "CALL-ME" not in dead.detail


@pytest.mark.parametrize(
    "identity",
    [
        {"customer_id": "C1", "phone": "13800138000"},
        {"customer_id": "C1", "phone": "+86 138 0013 8000"},
        {"customer_id": "C1", "email": "Alice.Smith@example.com"},
        pytest.param(
            {"customer_id": "C1", "phone": 13800138000},
            id="phone-as-json-number",
        ),
    ],
)
@pytest.mark.parametrize("batched", [False, True], ids=["single", "batch"])
def test_dead_letter_rows_never_carry_raw_phone_or_email(identity: dict[str, Any], batched: bool) -> None:
    bad = touchpoint(identity=identity, metrics={"csat": 9})  # rejected for csat, carries PII
    payload = {"events": [touchpoint(), copy.deepcopy(bad)]} if batched else bad
    [dead] = run(payload).rejected
    row = dead_letter_row(dead)
    text = row.raw + row.detail
    for needle in ("13800138000", "138 0013 8000", "alice.smith@example.com", "Alice.Smith@example.com"):
        assert needle not in text
    assert orjson.loads(row.raw)["event_id"] == bad["event_id"]  # the rest stays readable
