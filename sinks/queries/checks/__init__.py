"""The pipeline's invariants as queries (`cxj check`): each returns one row, (failures, example key).

Parameters: `{db}` for the database, `%(window)s` the rolling window in seconds, `%(hold)s` the
anonymous alert hold in seconds. Times in ClickHouse are whole seconds while the pipeline decides in
milliseconds, so every comparison leaves a second of slack on the side that avoids false failures.
ClickHouse 18.16 lambdas cannot read a subquery's columns, so the queries hand them in as arrays
(`arrayResize([x], length(a), x)`: x once per element).
"""

from __future__ import annotations

from importlib import resources

__all__ = ["DESCRIPTIONS", "load", "names"]

DESCRIPTIONS = {
    "high_risk_without_alert": "live high-risk customers whose current episode has no alert for the person",
    "two_alerts_one_episode": "people with two alerts for one high episode",
    "dissatisfied_recount": "dissatisfied_90d disagreeing with a recount from experience_signals",
    "left_under_merged_keys": "alerts or live journeys under a merged-away key with no identity override",
}


def names() -> list[str]:
    """Every check, in the order `cxj check` runs them."""
    return list(DESCRIPTIONS)


def load(name: str, database: str = "cx") -> str:
    path = resources.files(__name__) / f"{name}.sql"
    if not path.is_file():
        raise KeyError(f"no check {name!r}; known: {', '.join(names())}")
    return path.read_text().replace("{db}", database).strip()
