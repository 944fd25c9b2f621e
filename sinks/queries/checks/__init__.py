"""The pipeline's invariants as queries (`cxj check`): each returns one row, (failures, example key).

Parameters: `{db}` for the database, `{person_negatives}` the subquery in person_negatives.sql (a
person's first-negative times, shared by the checks that recount strikes), `%(window)s` the rolling
window in seconds, `%(hold)s` the anonymous alert hold in seconds. Times in ClickHouse are whole
seconds while the pipeline decides in milliseconds, so every comparison leaves a second of slack on
the side that avoids false failures. ClickHouse 18.16 lambdas cannot read a subquery's columns, so
the queries hand them in as arrays (`arrayResize([x], length(a), x)`: x once per element).
"""

from __future__ import annotations

from importlib import resources

__all__ = ["DESCRIPTIONS", "load", "names"]

DESCRIPTIONS = {
    "high_risk_without_alert": "live high-risk customers whose current episode has no alert for the person",
    "two_alerts_one_episode": "people with two alerts for one high episode",
    "dissatisfied_recount": "dissatisfied_90d disagreeing with a recount from experience_signals",
    "left_under_merged_keys": "alerts or live journeys under a merged-away key with no identity override",
    "alert_without_outcome": "churn alerts with no outcome in alert_outcomes",
}


def names() -> list[str]:
    """Every check, in the order `cxj check` runs them."""
    return list(DESCRIPTIONS)


def _read(name: str) -> str:
    return (resources.files(__name__) / f"{name}.sql").read_text().strip()


def load(name: str, database: str = "cx") -> str:
    """A check's SQL with `{db}` and the shared `{person_negatives}` subquery filled in."""
    if name not in DESCRIPTIONS:
        raise KeyError(f"no check {name!r}; known: {', '.join(names())}")
    negatives = "\n".join(line for line in _read("person_negatives").splitlines() if not line.startswith("--"))
    return _read(name).replace("{person_negatives}", negatives).replace("{db}", database)
