"""ClickHouse rows (Contract 3): one NamedTuple per table, fields in column order.

Times are whole seconds since the epoch (UTC): clickhouse-driver inserts ints into DateTime
columns three times faster than datetime objects.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final, NamedTuple

__all__ = [
    "COLUMNS",
    "OUTCOMES",
    "ROWS_BY_TABLE",
    "TABLE_OF_ROW",
    "AlertOutcomeRow",
    "AlertRow",
    "CustomerRow",
    "DeadLetterRow",
    "ErasureRow",
    "IdentityConflictRow",
    "IdentityLinkRow",
    "IdentityOverrideRow",
    "JourneyRow",
    "SignalRow",
    "Table",
    "TouchpointRow",
]


class TouchpointRow(NamedTuple):
    event_id: str
    customer_key: str  # stitched at ingest; touchpoints_resolved gives today's key
    channel: str
    event_type: str
    occurred_at: int
    occurred_ms: int
    received_at: int
    source: str
    experience_key: str
    journey_id: str
    signals: list[str]
    customer_id: str
    anonymous_id: str
    device_id: str
    phone_hash: str
    email_hash: str
    wechat_openid: str
    order_id: str
    case_id: str
    contact_id: str
    session_id: str
    agent_id: str
    store_id: str
    wait_seconds: float | None
    transfers: int | None
    handled_by: str
    resolved: int | None
    csat: int | None
    nps: int | None
    ces: int | None
    rating: int | None
    sentiment: float | None
    amount: float | None
    currency: str
    attributes: str  # JSON object
    schema_version: int


class SignalRow(NamedTuple):
    event_id: str
    customer_key: str
    experience_key: str
    signal: str
    polarity: int
    dimension: str
    channel: str
    event_type: str
    occurred_at: int
    journey_id: str


class CustomerRow(NamedTuple):
    customer_key: str
    dissatisfied_90d: int
    satisfied_90d: int
    experience_score: float
    churn_risk: str
    last_event_at: int
    version: int
    lifetime_value: float
    experiences: int
    open_journeys: int
    merged_into: str
    updated_at: int


class AlertRow(NamedTuple):
    alert_id: str
    customer_key: str
    level: str
    previous_level: str
    dissatisfied_90d: int
    experience_keys: list[str]
    signals: list[str]
    dimensions: list[str]
    triggered_at: int
    lifetime_value: float
    emitted_at: int
    actions: list[str]  # the playbook's action ids, most urgent first (migration 0009)
    action_texts: list[str]


class JourneyRow(NamedTuple):
    journey_id: str
    customer_key: str
    journey_type: str
    status: str
    started_at: int
    ended_at: int | None
    last_event_at: int
    touchpoints: int
    channels: list[str]
    dissatisfying: int
    merged_into: str
    version: int
    updated_at: int


class IdentityLinkRow(NamedTuple):
    identifier: str
    identifier_type: str
    customer_key: str
    previous_key: str
    linked_at: int
    event_id: str
    version: int


class IdentityOverrideRow(NamedTuple):
    stitched_key: str
    customer_key: str
    merged_at: int
    version: int


class IdentityConflictRow(NamedTuple):
    identifier: str
    existing_key: str
    claimed_key: str
    reason: str
    event_id: str
    occurred_at: int
    detected_at: int


class DeadLetterRow(NamedTuple):
    received_at: int
    topic: str
    partition: int
    offset: int
    idx: int
    reason: str
    detail: str
    raw: str
    event_id: str
    source: str
    channel: str
    payload_hash: str  # with (topic, partition, offset, idx), what makes a dead letter the same one
    subjects: list[str]  # customer id and hashed identifiers of the payload, for `cxj forget`


class ErasureRow(NamedTuple):
    """Audit of a `cxj forget` request, one row per stage and item; never the erased keys themselves."""

    request_id: str
    stage: str  # "identity" (arbiter), "state" (a stitch partition), "clickhouse" (the command)
    item: int
    partition: int
    expected: int
    erased: int
    done_at: int


# What became of a customer after a churn alert (`alert_outcomes.outcome`).
OUTCOMES: Final = ("pending", "recovered", "relapsed", "lost")


class AlertOutcomeRow(NamedTuple):
    """What became of a customer after a churn alert (issue 17), in event time; the highest version wins."""

    alert_id: str
    customer_key: str
    triggered_at: int  # the window's start: the alert's crossing, or its episode's start if facts moved it
    outcome: str  # pending, recovered, relapsed, lost
    decided: int  # 1 once it can no longer change (but for late data): relapsed, or the window passed
    outcome_at: int | None  # the first new dissatisfying experience, the first repair, the window's end when lost
    version: int
    updated_at: int


class Table(StrEnum):
    """The pipeline's ClickHouse tables (docs/contract.md, Contract 3): the one place their names are written."""

    TOUCHPOINTS = "touchpoints"
    EXPERIENCE_SIGNALS = "experience_signals"
    CUSTOMER_EXPERIENCE = "customer_experience"
    CHURN_ALERTS = "churn_alerts"
    JOURNEYS = "journeys"
    IDENTITY_LINKS = "identity_links"
    IDENTITY_OVERRIDES = "identity_overrides"
    IDENTITY_CONFLICTS = "identity_conflicts"
    DEAD_LETTERS = "dead_letters"
    ERASURES = "erasures"
    ALERT_OUTCOMES = "alert_outcomes"


ROWS_BY_TABLE: Final[dict[Table, type[tuple[object, ...]]]] = {
    Table.TOUCHPOINTS: TouchpointRow,
    Table.EXPERIENCE_SIGNALS: SignalRow,
    Table.CUSTOMER_EXPERIENCE: CustomerRow,
    Table.CHURN_ALERTS: AlertRow,
    Table.JOURNEYS: JourneyRow,
    Table.IDENTITY_LINKS: IdentityLinkRow,
    Table.IDENTITY_OVERRIDES: IdentityOverrideRow,
    Table.IDENTITY_CONFLICTS: IdentityConflictRow,
    Table.DEAD_LETTERS: DeadLetterRow,
    Table.ERASURES: ErasureRow,
    Table.ALERT_OUTCOMES: AlertOutcomeRow,
}
TABLE_OF_ROW: Final[dict[type[tuple[object, ...]], Table]] = {row: table for table, row in ROWS_BY_TABLE.items()}
# Each table's insert columns: its row class's fields, in order.
COLUMNS: Final[dict[str, tuple[str, ...]]] = {str(t): row._fields for t, row in ROWS_BY_TABLE.items()}  # type: ignore[attr-defined]
