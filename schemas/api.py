"""The HTTP API's contract (`cxj serve`, docs/contract.md "issue 16"): what it answers, as pydantic models.

`/openapi.json` is built from these models and `schemas.touchpoint`'s, so the document and the answers
never drift; the tests validate real answers against them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "Accepted",
    "ActionView",
    "AlertView",
    "ApiError",
    "ExperienceView",
    "JourneyView",
    "Profile",
    "Rejection",
    "Risk",
    "TouchpointView",
]

Risk = Literal["none", "low", "elevated", "high"]


class _Answer(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Rejection(_Answer):
    """One touchpoint of the request the pipeline will dead-letter, and why (Contract 1's reasons)."""

    index: int = Field(ge=0, description="position in `events` (0 for a single touchpoint)")
    event_id: str = Field(description="as sent, PII patterns redacted; empty when absent")
    reason: str = Field(description="machine-readable reason, as in cx.dead_letters")
    detail: str


class Accepted(_Answer):
    """202: the broker acknowledged the request's message (acks=all); nothing here can be lost any more."""

    accepted: int = Field(ge=0, description="touchpoints the pipeline will store")
    rejected: list[Rejection] = Field(description="touchpoints it will dead-letter (they reach cx.dead_letters)")


class ApiError(_Answer):
    """Any 4xx or 5xx answer."""

    error: str = Field(description="a stable slug: bad_request, unauthorized, forbidden, too_large, ...")
    detail: str


class ExperienceView(_Answer):
    """One experience that counts in the rolling window (Contract 2): its signals and where it happened."""

    experience_key: str
    occurred_at: datetime
    polarity: Literal["dissatisfying", "satisfying", "mixed"]
    signals: list[str]
    dimensions: list[str]
    channels: list[str]


class JourneyView(_Answer):
    journey_id: str
    journey_type: str
    status: str
    started_at: datetime
    last_event_at: datetime
    touchpoints: int
    channels: list[str]
    dissatisfying: bool


class TouchpointView(_Answer):
    event_id: str
    occurred_at: datetime
    channel: str
    event_type: str
    source: str
    signals: list[str]
    journey_id: str


class ActionView(_Answer):
    action: str = Field(description="the playbook's id of a recovery action")
    text: str = Field(description="what to do, as the agent reads it")


class AlertView(_Answer):
    alert_id: str
    level: Risk
    dissatisfied_90d: int
    experience_keys: list[str]
    signals: list[str]
    dimensions: list[str]
    triggered_at: datetime
    actions: list[ActionView] = Field(default_factory=list, description="recovery actions, most urgent first")


class Profile(_Answer):
    """What a front-line agent needs on the next call: how many strikes, which, and what is open."""

    customer_key: str = Field(description="the customer's current key (merged keys resolve to it)")
    keys: list[str] = Field(description="every stitched key that is this customer (itself and keys merged into it)")
    churn_risk: Risk
    dissatisfied_90d: int
    satisfied_90d: int
    experience_score: float
    lifetime_value: float
    last_event_at: datetime | None
    experiences: list[ExperienceView] = Field(description="the window's experiences with a signal, newest first")
    open_journeys: list[JourneyView]
    touchpoints: list[TouchpointView] = Field(description="the last 20, newest first")
    alerts: list[AlertView] = Field(description="churn alerts of the person, newest first")
