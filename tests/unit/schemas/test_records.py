"""Pipeline records: the contract's rejection reasons and risk levels, strict alert and link models."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from schemas.records import RISK_LEVELS, ChurnAlert, IdentityLink, RejectReason
from schemas.rows import ROWS_BY_TABLE

CONTRACT_REASONS = {
    "invalid_json",
    "not_an_object",
    "missing_identity",
    "unknown_channel",
    "invalid_field",
    "future_timestamp",
    "too_large",
    "unsupported_schema_version",
}
WHEN = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)


def alert(**overrides: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "alert_id": "a1",
        "customer_key": "C1",
        "level": "high",
        "previous_level": "elevated",
        "dissatisfied_90d": 3,
        "experience_keys": ["case:K1", "contact:c1", "order:O1"],
        "signals": ["complaint", "long_wait"],
        "dimensions": ["fairness", "respect"],
        "triggered_at": WHEN,
        "lifetime_value": 120.5,
        "emitted_at": WHEN,
    }
    return fields | overrides


def test_reject_reasons_are_exactly_the_contract_ones() -> None:
    assert {r.value for r in RejectReason} == CONTRACT_REASONS
    assert all(str(r) == r.value for r in RejectReason)  # written as plain strings


def test_risk_levels_in_rising_order() -> None:
    assert RISK_LEVELS == ("none", "low", "elevated", "high")


def test_a_churn_alert_carries_why_and_the_lifetime_value() -> None:
    model = ChurnAlert(**alert())
    assert model.experience_keys == ["case:K1", "contact:c1", "order:O1"]
    assert model.lifetime_value == 120.5
    assert model.model_dump(mode="json")["triggered_at"] == "2026-11-01T09:00:00Z"


@pytest.mark.parametrize(
    "overrides",
    [
        {"extra": 1},
        {"level": "critical"},
        {"previous_level": "medium"},
        {"triggered_at": datetime(2026, 11, 1, 9, 0)},  # naive: times are UTC-aware
        {"experience_keys": "case:K1"},
    ],
    ids=["extra-field", "unknown-level", "unknown-previous-level", "naive-time", "keys-not-a-list"],
)
def test_a_churn_alert_is_strict(overrides: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        ChurnAlert(**alert(**overrides))


def test_a_churn_alert_is_frozen() -> None:
    model = ChurnAlert(**alert())
    with pytest.raises(ValidationError):
        model.level = "low"  # type: ignore[misc]


def test_an_identity_link_forbids_extra_fields_and_naive_times() -> None:
    good = {
        "identifier": "anon:a1",
        "customer_key": "C1",
        "previous_key": "~anon:a1",
        "linked_at": WHEN,
        "event_id": "e1",
        "version": 1,
    }
    IdentityLink(**good)
    with pytest.raises(ValidationError):
        IdentityLink(**good, extra="x")
    with pytest.raises(ValidationError):
        IdentityLink(**(good | {"linked_at": datetime(2026, 11, 1)}))


# Contract 3's key columns, per table (at least these).
CONTRACT_COLUMNS = {
    "touchpoints": {
        "event_id",
        "customer_key",
        "channel",
        "event_type",
        "occurred_at",
        "source",
        "experience_key",
    },
    "identity_links": {"identifier", "customer_key", "linked_at"},
    "experience_signals": {
        "event_id",
        "customer_key",
        "experience_key",
        "signal",
        "polarity",
        "dimension",
        "channel",
        "occurred_at",
    },
    "customer_experience": {
        "customer_key",
        "dissatisfied_90d",
        "satisfied_90d",
        "experience_score",
        "churn_risk",
        "last_event_at",
        "version",
    },
    "churn_alerts": {
        "alert_id",
        "customer_key",
        "level",
        "dissatisfied_90d",
        "experience_keys",
        "signals",
        "triggered_at",
        "lifetime_value",
    },
    "journeys": {
        "journey_id",
        "customer_key",
        "journey_type",
        "status",
        "started_at",
        "ended_at",
        "touchpoints",
        "channels",
        "dissatisfying",
        "version",
    },
    "dead_letters": {"received_at", "topic", "partition", "offset", "reason", "detail", "raw"},
}


@pytest.mark.parametrize("table", sorted(CONTRACT_COLUMNS))
def test_rows_carry_the_contract_key_columns(table: str) -> None:
    assert CONTRACT_COLUMNS[table] <= set(ROWS_BY_TABLE[table]._fields)
