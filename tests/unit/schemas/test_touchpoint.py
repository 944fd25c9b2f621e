"""The v1 wire model (Contract 1): strict types, no extra fields, the vocabulary, the batch envelope."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError

from schemas.export import render
from schemas.touchpoint import (
    CHANNELS,
    EVENT_TYPE_PATTERN,
    EVENT_TYPES_V1,
    IDENTITY_FIELDS,
    Touchpoint,
    TouchpointBatch,
    touchpoints_adapter,
)
from tests.factories import touchpoint

ONE = TypeAdapter(Touchpoint)
BATCH = TypeAdapter(TouchpointBatch)

CONTRACT_CHANNELS = "web|app|phone|ivr|chat|wechat|email|sms|store|logistics|survey|social".split("|")
CONTRACT_EVENT_TYPES = {
    # digital
    *"page_view search product_view add_to_cart checkout_started login app_open".split(),
    # commerce
    *(
        "order_placed payment_completed payment_failed order_cancelled shipment_dispatched shipment_update "
        "delivered delivery_delayed return_requested refund_issued"
    ).split(),
    # service
    *(
        "contact_started agent_answered transferred contact_ended callback_requested case_opened "
        "case_resolved complaint_filed compensation_offered"
    ).split(),
    # feedback, proactive
    *"survey_response review_posted social_mention notification_sent".split(),
}
FULL = touchpoint(
    "contact_ended",
    channel="phone",
    identity={
        "customer_id": "C1",
        "anonymous_id": "a",
        "device_id": "d",
        "phone": "138",
        "email": "e@x.cn",
        "wechat_openid": "w",
    },
    context={
        "order_id": "o",
        "case_id": "k",
        "contact_id": "c",
        "session_id": "s",
        "agent_id": "g",
        "store_id": "t",
    },
    metrics={
        "wait_seconds": 0,
        "transfers": 0,
        "handled_by": "human",
        "resolved": True,
        "csat": 1,
        "nps": 0,
        "ces": 1,
        "rating": 1,
        "sentiment": 0.0,
        "amount": 0.0,
        "currency": "CNY",
    },
    attributes={"free-form": "string map"},
)


def test_the_channels_are_the_contract_channels() -> None:
    assert list(CHANNELS) == CONTRACT_CHANNELS


def test_the_v1_vocabulary_is_the_contract_vocabulary() -> None:
    assert set(EVENT_TYPES_V1) == CONTRACT_EVENT_TYPES


def test_identity_fields_in_contract_order() -> None:
    assert IDENTITY_FIELDS == ("customer_id", "anonymous_id", "device_id", "phone", "email", "wechat_openid")


def test_the_full_contract_example_validates() -> None:
    assert ONE.validate_python(FULL) == FULL


@pytest.mark.parametrize("event_type", sorted(CONTRACT_EVENT_TYPES))
def test_every_vocabulary_event_type_matches_the_slug_pattern(event_type: str) -> None:
    ONE.validate_python(touchpoint(event_type))


@pytest.mark.parametrize("channel", CONTRACT_CHANNELS)
def test_every_contract_channel_validates(channel: str) -> None:
    ONE.validate_python(touchpoint(channel=channel))


def _with(section: str | None, key: str, value: Any) -> dict[str, Any]:
    event = json.loads(json.dumps(FULL))
    (event[section] if section else event)[key] = value
    return event


@pytest.mark.parametrize("section", [None, "identity", "context", "metrics"])
def test_extra_fields_are_forbidden_everywhere(section: str | None) -> None:
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        ONE.validate_python(_with(section, "surprise", "x"))


@pytest.mark.parametrize(
    ("section", "key", "value"),
    [
        ("metrics", "csat", "4"),  # no string-to-int coercion
        ("metrics", "csat", 4.0),  # no float-to-int coercion
        ("metrics", "transfers", False),  # no bool-as-int
        ("metrics", "resolved", 1),  # no int-as-bool
        ("metrics", "resolved", "true"),
        ("metrics", "wait_seconds", "30"),
        ("metrics", "sentiment", "0.5"),
        ("identity", "customer_id", 42),
        ("context", "order_id", 42),
        (None, "schema_version", "1"),
        (None, "event_id", 7),
        ("attributes", "n", 1),
    ],
)
def test_types_are_strict(section: str | None, key: str, value: Any) -> None:
    with pytest.raises(ValidationError):
        ONE.validate_python(_with(section, key, value))


@pytest.mark.parametrize(
    "required", ["event_id", "schema_version", "occurred_at", "source", "channel", "event_type", "identity"]
)
def test_required_fields(required: str) -> None:
    event = touchpoint()
    del event[required]
    with pytest.raises(ValidationError):
        ONE.validate_python(event)


@pytest.mark.parametrize("optional", ["context", "metrics", "attributes"])
def test_optional_sections(optional: str) -> None:
    event = json.loads(json.dumps(FULL))
    del event[optional]
    ONE.validate_python(event)


@pytest.mark.parametrize(
    ("occurred_at", "valid"),
    [
        ("2026-11-20T10:11:12.123+08:00", True),
        ("2026-11-20T10:11:12Z", True),
        ("2026-11-20T10:11:12-05:00", True),
        ("2026-11-20T10:11:12.123456789Z", True),
        ("2026-11-20T10:11:12", False),
        ("2026-11-20", False),
        ("20261120T101112Z", False),
        ("2026-11-20T10:11:12+0800", False),
    ],
)
def test_occurred_at_is_rfc_3339_with_an_offset(occurred_at: str, valid: bool) -> None:
    event = touchpoint(occurred_at=occurred_at)
    if valid:
        ONE.validate_python(event)
    else:
        with pytest.raises(ValidationError):
            ONE.validate_python(event)


@pytest.mark.parametrize(
    ("event_type", "valid"),
    [
        ("page_view", True),
        ("custom_thing_2", True),
        ("ab", True),
        ("a", False),
        ("Page_view", False),
        ("page-view", False),
        ("2fa_login", False),
        ("a" * 64, True),
        ("a" * 65, False),
    ],
)
def test_event_type_slug_pattern(event_type: str, valid: bool) -> None:
    assert EVENT_TYPE_PATTERN == r"^[a-z][a-z0-9_]{1,63}$"
    if valid:
        ONE.validate_python(touchpoint(event_type))
    else:
        with pytest.raises(ValidationError):
            ONE.validate_python(touchpoint(event_type))


def test_event_id_is_1_to_128_characters() -> None:
    ONE.validate_python(touchpoint(event_id="e" * 128))
    for bad in ("", "e" * 129):
        event = touchpoint()
        event["event_id"] = bad
        with pytest.raises(ValidationError):
            ONE.validate_python(event)


def test_attributes_hold_at_most_32_string_keys() -> None:
    ONE.validate_python(touchpoint(attributes={f"k{i}": "v" for i in range(32)}))
    with pytest.raises(ValidationError):
        ONE.validate_python(touchpoint(attributes={f"k{i}": "v" for i in range(33)}))


@pytest.mark.parametrize(("count", "valid"), [(0, False), (1, True), (1000, True), (1001, False)])
def test_a_batch_holds_1_to_1000_touchpoints(count: int, valid: bool) -> None:
    batch = {"events": [touchpoint() for _ in range(count)]}
    if valid:
        BATCH.validate_python(batch)
    else:
        with pytest.raises(ValidationError):
            BATCH.validate_python(batch)


def test_the_batch_envelope_allows_only_events() -> None:
    with pytest.raises(ValidationError):
        BATCH.validate_python({"events": [touchpoint()], "source": "x"})


def test_one_validation_call_reports_the_index_of_each_bad_element() -> None:
    events = [touchpoint(), touchpoint(channel="fax"), touchpoint(), touchpoint(metrics={"csat": 0})]
    with pytest.raises(ValidationError) as info:
        touchpoints_adapter.validate_python(events)
    assert {err["loc"][0] for err in info.value.errors()} == {1, 3}


@pytest.mark.parametrize("model", [Touchpoint, TouchpointBatch])
def test_the_published_json_schema_forbids_extra_fields(model: Any) -> None:
    schema = json.loads(render(model))
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["additionalProperties"] is False
    for definition in schema.get("$defs", {}).values():
        if definition.get("type") == "object" and "properties" in definition:
            assert definition["additionalProperties"] is False
