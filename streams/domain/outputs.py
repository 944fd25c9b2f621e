"""What one stitch call produces (`Output`), and the `churn_alerts` row of an alert."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from schemas.records import ChurnAlert
from schemas.rows import TABLE_OF_ROW, AlertRow, Table
from streams.domain.codec import Item

__all__ = ["Output", "alert_row"]


@dataclass(slots=True)
class Output:
    """Everything one call produced: rows by table, items to re-route, alerts, changed keys."""

    rows: dict[Table, list[tuple[object, ...]]] = field(default_factory=dict)
    forward: list[Item] = field(default_factory=list)
    alerts: list[ChurnAlert] = field(default_factory=list)
    changed: dict[str, bytes | None] = field(default_factory=dict)
    duplicates: int = 0
    signals: Counter[str] = field(default_factory=Counter)
    journeys_opened: Counter[str] = field(default_factory=Counter)
    journeys_closed: Counter[tuple[str, str]] = field(default_factory=Counter)
    journey_seconds: list[tuple[str, float]] = field(default_factory=list)
    merges: int = 0
    erased: int = 0
    received_ms: list[int] = field(default_factory=list)  # each touchpoint item's receive time, for the lag
    outcomes_decided: Counter[str] = field(default_factory=Counter)  # alert outcomes decided, by outcome

    def add(self, row: tuple[object, ...]) -> None:
        """Collect a row for the table its class stands for (schemas.rows.ROWS_BY_TABLE)."""
        self.rows.setdefault(TABLE_OF_ROW[type(row)], []).append(row)


def alert_row(a: ChurnAlert) -> AlertRow:
    """The `churn_alerts` row of an alert (the same record goes to topic `cx.churn.alerts`)."""
    return AlertRow(
        alert_id=a.alert_id,
        customer_key=a.customer_key,
        level=a.level,
        previous_level=a.previous_level,
        dissatisfied_90d=a.dissatisfied_90d,
        experience_keys=a.experience_keys,
        signals=a.signals,
        dimensions=a.dimensions,
        triggered_at=int(a.triggered_at.timestamp()),
        lifetime_value=a.lifetime_value,
        emitted_at=int(a.emitted_at.timestamp()),
        actions=[r.action for r in a.actions],
        action_texts=[r.text for r in a.actions],
    )
