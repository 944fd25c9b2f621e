"""The v1 touchpoint wire format of topic `cx.touchpoints` (Contract 1)."""

from __future__ import annotations

from typing import Annotated, Final, Literal, NotRequired

from pydantic import (
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StringConstraints,
    TypeAdapter,
    with_config,
)
from typing_extensions import TypedDict

__all__ = [
    "CHANNELS",
    "EVENT_TYPES_V1",
    "IDENTITY_FIELDS",
    "ID_FIELDS",
    "MAX_BATCH_BYTES",
    "MAX_BATCH_EVENTS",
    "MAX_EVENT_BYTES",
    "SCHEMA_VERSION",
    "Context",
    "Identity",
    "Metrics",
    "Touchpoint",
    "TouchpointBatch",
    "touchpoints_adapter",
]

SCHEMA_VERSION: Final = 1
MAX_EVENT_BYTES: Final = 64 * 1024
MAX_BATCH_EVENTS: Final = 1000
MAX_BATCH_BYTES: Final = 8 * 1024 * 1024

CHANNELS: Final = (
    "web",
    "app",
    "phone",
    "ivr",
    "chat",
    "wechat",
    "email",
    "sms",
    "store",
    "logistics",
    "survey",
    "social",
)
Channel = Literal[
    "web",
    "app",
    "phone",
    "ivr",
    "chat",
    "wechat",
    "email",
    "sms",
    "store",
    "logistics",
    "survey",
    "social",
]

EVENT_TYPES_V1: Final = frozenset(
    # digital
    "page_view search product_view add_to_cart checkout_started login app_open "
    # commerce
    "order_placed payment_completed payment_failed order_cancelled shipment_dispatched "
    "shipment_update delivered delivery_delayed return_requested refund_issued "
    # service
    "contact_started agent_answered transferred contact_ended callback_requested case_opened "
    "case_resolved complaint_filed compensation_offered "
    # feedback
    "survey_response review_posted social_mention "
    # proactive
    "notification_sent".split()
)
EVENT_TYPE_PATTERN: Final = r"^[a-z][a-z0-9_]{1,63}$"

# Identity fields in the order that picks a touchpoint's "first identifier" (Contract 2).
IDENTITY_FIELDS: Final = (
    "customer_id",
    "anonymous_id",
    "device_id",
    "phone",
    "email",
    "wechat_openid",
)

# Fields that name something (and are joined on) rather than describe it. A phone number or e-mail
# address found in one is stored as its keyed hash (`phone:<hmac>`, `email:<hmac>`, or `pii:<hmac>`
# for one inside a longer id) unless `CXJ_PII_RAW_ID_FIELDS` names the field (docs/contract.md).
ID_FIELDS: Final = (
    "event_id",
    "customer_id",
    "anonymous_id",
    "device_id",
    "wechat_openid",
    "order_id",
    "case_id",
    "contact_id",
    "session_id",
    "agent_id",
    "store_id",
)

Id = Annotated[str, StringConstraints(max_length=128)]
# RFC 3339 with a mandatory offset; the ingest stage parses it with datetime.fromisoformat.
Rfc3339 = Annotated[
    str,
    StringConstraints(pattern=r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$"),
]
# TypedDicts, not BaseModels: validated by pydantic-core all the same (strict, extra forbidden),
# but without building model instances -- 7.9 against 17.5 us per touchpoint, measured on the
# 2-core machine; the ingest stage turns them into immutable records at once.
_STRICT: Final = ConfigDict(extra="forbid", strict=True)


@with_config(_STRICT)
class Identity(TypedDict, total=False):
    """Who the touchpoint is about; at least one field must carry a real value."""

    customer_id: Id | None
    anonymous_id: Id | None
    device_id: Id | None
    phone: Annotated[str, StringConstraints(max_length=64)] | None
    email: Annotated[str, StringConstraints(max_length=254)] | None
    wechat_openid: Id | None


@with_config(_STRICT)
class Context(TypedDict, total=False):
    """What the touchpoint is about: the anchors of experiences and journeys."""

    order_id: Id | None
    case_id: Id | None
    contact_id: Id | None
    session_id: Id | None
    agent_id: Id | None
    store_id: Id | None


Number = StrictFloat | StrictInt


@with_config(_STRICT)
class Metrics(TypedDict, total=False):
    """Measured facts of the touchpoint; ranges per Contract 1."""

    wait_seconds: Annotated[Number, Field(ge=0, le=31_536_000)] | None
    transfers: Annotated[StrictInt, Field(ge=0, le=1000)] | None
    handled_by: Literal["human", "bot", "none"] | None
    resolved: StrictBool | None
    csat: Annotated[StrictInt, Field(ge=1, le=5)] | None
    nps: Annotated[StrictInt, Field(ge=0, le=10)] | None
    ces: Annotated[StrictInt, Field(ge=1, le=7)] | None
    rating: Annotated[StrictInt, Field(ge=1, le=5)] | None
    sentiment: Annotated[Number, Field(ge=-1, le=1)] | None
    amount: Annotated[Number, Field(ge=-1e12, le=1e12)] | None
    currency: Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")] | None


AttributeKey = Annotated[str, StringConstraints(min_length=1, max_length=64)]
AttributeValue = Annotated[str, StringConstraints(max_length=4096)]


@with_config(
    ConfigDict(
        extra="forbid",
        strict=True,
        title="Touchpoint",
        json_schema_extra={"$id": "https://cx-journeys.dev/schemas/touchpoint.v1.json"},
    )
)
class Touchpoint(TypedDict):
    """One customer touchpoint, schema version 1 (one Kafka message, or one element of a batch)."""

    event_id: Annotated[str, StringConstraints(min_length=1, max_length=128)]
    schema_version: Literal[1]
    occurred_at: Rfc3339
    source: Annotated[str, StringConstraints(min_length=1, max_length=128)]
    channel: Channel
    event_type: Annotated[str, StringConstraints(pattern=EVENT_TYPE_PATTERN)]
    identity: Identity
    context: NotRequired[Context]
    metrics: NotRequired[Metrics]
    attributes: NotRequired[Annotated[dict[AttributeKey, AttributeValue], Field(max_length=32)]]


@with_config(
    ConfigDict(
        extra="forbid",
        title="TouchpointBatch",
        json_schema_extra={"$id": "https://cx-journeys.dev/schemas/touchpoint-batch.v1.json"},
    )
)
class TouchpointBatch(TypedDict):
    """The batch envelope: up to 1,000 touchpoints in one Kafka message."""

    events: Annotated[list[Touchpoint], Field(min_length=1, max_length=MAX_BATCH_EVENTS)]


# One validation call per batch (issue #4): errors carry the index of the failing element.
touchpoints_adapter: Final[TypeAdapter[list[Touchpoint]]] = TypeAdapter(list[Touchpoint])
