"""Records the pipeline produces: dead letters, churn alerts, identity links, internal hops."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Final, Literal, NamedTuple

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

__all__ = [
    "DLQ_HEADER_PREFIX",
    "DLQ_ORIGIN_HEADER",
    "RISK_LEVELS",
    "ChurnAlert",
    "DeadLetter",
    "ForgetRequest",
    "IdentityLink",
    "LinkClaim",
    "RecommendedAction",
    "RejectReason",
    "TouchpointRecord",
    "with_key",
]

RISK_LEVELS: Final = ("none", "low", "elevated", "high")
RiskLevel = Literal["none", "low", "elevated", "high"]
# Headers on `cx.touchpoints.dlq` messages; the value is the rejected payload itself.
DLQ_HEADER_PREFIX: Final = "cx.dlq."
# Where a dead letter came from: "<topic>/<partition>/<offset>/<index>" (index within a batch).
DLQ_ORIGIN_HEADER: Final = DLQ_HEADER_PREFIX + "origin"


class RejectReason(StrEnum):
    """Machine-readable rejection reasons of Contract 1."""

    INVALID_JSON = "invalid_json"
    NOT_AN_OBJECT = "not_an_object"
    MISSING_IDENTITY = "missing_identity"
    UNKNOWN_CHANNEL = "unknown_channel"
    INVALID_FIELD = "invalid_field"
    FUTURE_TIMESTAMP = "future_timestamp"
    TOO_LARGE = "too_large"
    UNSUPPORTED_SCHEMA_VERSION = "unsupported_schema_version"


class TouchpointRecord(NamedTuple):
    """A validated touchpoint after ingest: PII hashed, identifiers normalised, times in ms.

    Travels between stages as a msgpack array in this field order (append only).
    `identifiers` are `type:value` strings (`anon:…`, `device:…`, `phone:<hmac>`, `email:<hmac>`,
    `wechat:…`) in Contract 2's priority order; `key` is the stitched customer key.
    """

    event_id: str
    occurred_ms: int
    received_ms: int
    source: str
    channel: str
    event_type: str
    customer_id: str | None
    identifiers: tuple[str, ...]
    order_id: str | None
    case_id: str | None
    contact_id: str | None
    session_id: str | None
    agent_id: str | None
    store_id: str | None
    wait_seconds: float | None
    transfers: int | None
    handled_by: str | None
    resolved: bool | None
    csat: int | None
    nps: int | None
    ces: int | None
    rating: int | None
    sentiment: float | None
    amount: float | None
    currency: str | None
    attributes: dict[str, str] | None
    key: str


def with_key(rec: TouchpointRecord, key: str) -> TouchpointRecord:
    """`rec._replace(key=key)` at a fraction of the cost (key is the last field)."""
    return _make_record((*rec[:-1], key))


_make_record: Final = TouchpointRecord._make


class DeadLetter(NamedTuple):
    """One rejected payload, as written to `cx.dead_letters` (raw already redacted there)."""

    received_ms: int
    topic: str
    partition: int
    offset: int
    index: int  # type: ignore[assignment]  # the field shadows tuple.index, which no caller uses
    reason: RejectReason
    detail: str
    raw: bytes
    event_id: str
    source: str
    channel: str
    # What makes this rejection itself, beside where it was read: a keyed hash of the payload, so a
    # reused offset (a recreated topic, a broker that lost its log) is a new dead letter, a replay is not.
    payload_hash: str = ""
    # Whom it is about, as the pipeline keys them (customer id, hashed identifiers): `cxj forget` erases by these.
    subjects: tuple[str, ...] = ()


class LinkClaim(NamedTuple):
    """Stage 1 -> identity arbiter: these identifiers arrived together on one touchpoint."""

    customer_id: str | None
    identifiers: tuple[str, ...]
    occurred_ms: int
    event_id: str


class ForgetRequest(NamedTuple):
    """`cxj forget` -> identity arbiter: erase `subject` (a customer key) and every key merged into it."""

    request_id: str
    subject: str
    requested_ms: int


class IdentityLink(BaseModel):
    """One mapping change on topic `cx.identity.links` (key: the identifier)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    identifier: str = Field(description="`<type>:<value or hash>`")
    customer_key: str
    previous_key: str = Field(description="The identifier's key before this change")
    linked_at: AwareDatetime = Field(description="Event time of the touchpoint that linked it")
    event_id: str
    version: int = Field(description="Monotonic per identifier; the highest wins")


class RecommendedAction(BaseModel):
    """One recovery action the playbook recommends for an alert (issue 17), most urgent first."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    action: str = Field(description="The playbook's id of the action")
    text: str = Field(description="What to do, as the agent reads it")
    perception: str = Field(description="The perception it repairs (a Contract 2 dimension)")
    because: list[str] = Field(description="The alert's signals that called for it, sorted")
    within_hours: int | None = Field(default=None, description="How soon, when it matters")
    worth: str | None = Field(default=None, description="What a compensation is worth")


class ChurnAlert(BaseModel):
    """A customer crossed into high churn risk; topic `cx.churn.alerts`, table `cx.churn_alerts`."""

    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        json_schema_extra={"$id": "https://cx-journeys.dev/schemas/churn-alert.v1.json"},
    )

    alert_id: str = Field(description="Deterministic: the same crossing always has the same id")
    customer_key: str
    level: RiskLevel
    previous_level: RiskLevel
    dissatisfied_90d: int
    experience_keys: list[str] = Field(description="The dissatisfying experiences in the window")
    signals: list[str] = Field(description="Their negative signals, distinct, sorted")
    dimensions: list[str]
    triggered_at: AwareDatetime = Field(description="Event time of the crossing")
    lifetime_value: float = Field(description="Sum of the customer's order_placed amounts")
    emitted_at: datetime
    actions: list[RecommendedAction] = Field(
        default_factory=list,
        description="Recovery actions from the playbook (CXJ_PLAYBOOK_FILE), the experience that hurt most first",
    )
