"""The CX report: what ClickHouse says about risk, dissatisfaction and alerts, as tables."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, Final

from rich.console import Console
from rich.table import Table

from sinks.clickhouse import ClickHouse

__all__ = ["Report", "collect", "render"]

# Live customers only: a key merged into another keeps a zeroed row that points at it.
_RISK: Final = """
SELECT toString(churn_risk) AS risk, count() AS customers, round(avg(experience_score), 1),
       round(sum(lifetime_value), 2)
FROM {db}.customer_experience FINAL
WHERE merged_into = ''
GROUP BY risk ORDER BY min(toUInt8(churn_risk)) DESC
"""
_BY_CHANNEL_SIGNAL: Final = """
SELECT channel, signal, dimension, uniqExact(customer_key, experience_key) AS experiences,
       count() AS touchpoints
FROM {db}.experience_signals FINAL
WHERE polarity = -1
GROUP BY channel, signal, dimension
ORDER BY experiences DESC, channel, signal
LIMIT %(limit)s
"""
_ALERTS: Final = """
SELECT a.triggered_at, if(o.customer_key = '', a.customer_key, o.customer_key), a.dissatisfied_90d,
       a.experience_keys, a.signals, a.lifetime_value
FROM (SELECT *, customer_key AS stitched_key FROM {db}.churn_alerts FINAL) AS a
ANY LEFT JOIN (
    SELECT stitched_key, argMax(customer_key, version) AS customer_key
    FROM {db}.identity_overrides GROUP BY stitched_key
) AS o USING (stitched_key)
ORDER BY a.triggered_at DESC, a.alert_id
LIMIT %(limit)s
"""
_TOTALS: Final = """
SELECT
    (SELECT count() FROM {db}.touchpoints FINAL),
    (SELECT count() FROM {db}.dead_letters),
    (SELECT count() FROM {db}.customer_experience FINAL WHERE merged_into = ''),
    (SELECT count() FROM {db}.churn_alerts FINAL),
    (SELECT count() FROM {db}.journeys FINAL WHERE merged_into = '')
"""
_REJECTIONS: Final = "SELECT reason, count() FROM {db}.dead_letters GROUP BY reason ORDER BY count() DESC"


@dataclass
class Report:
    touchpoints: int = 0
    dead_letters: int = 0
    customers: int = 0
    alerts: int = 0
    journeys: int = 0
    risk: list[tuple[str, int, float, float]] = field(default_factory=list)
    dissatisfaction: list[tuple[str, str, str, int, int]] = field(default_factory=list)
    latest_alerts: list[tuple[datetime, str, int, list[str], list[str], float]] = field(default_factory=list)
    rejections: list[tuple[str, int]] = field(default_factory=list)

    def customers_at(self, level: str) -> int:
        return next((n for risk, n, *_ in self.risk if risk == level), 0)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def collect(ch: ClickHouse, *, limit: int = 10) -> Report:
    """Read the report's figures (exact reads: FINAL)."""
    totals = ch.query(_TOTALS)[0]
    return Report(
        touchpoints=totals[0],
        dead_letters=totals[1],
        customers=totals[2],
        alerts=totals[3],
        journeys=totals[4],
        risk=[tuple(r) for r in ch.query(_RISK)],  # type: ignore[misc]
        dissatisfaction=[tuple(r) for r in ch.query(_BY_CHANNEL_SIGNAL, {"limit": limit * 2})],  # type: ignore[misc]
        latest_alerts=[tuple(r) for r in ch.query(_ALERTS, {"limit": limit})],  # type: ignore[misc]
        rejections=[tuple(r) for r in ch.query(_REJECTIONS)],  # type: ignore[misc]
    )


def render(report: Report, console: Console) -> None:
    console.rule("[bold]cx-journeys report")
    console.print(
        f"{report.touchpoints:,} touchpoints · {report.customers:,} customers · "
        f"{report.journeys:,} journeys · {report.alerts:,} churn alerts · "
        f"{report.dead_letters:,} dead letters"
    )
    risk = Table(title="Customers by churn risk")
    for col in ("churn risk", "customers", "avg experience score", "lifetime value"):
        risk.add_column(col, justify="right" if col != "churn risk" else "left")
    for level, n, score, ltv in report.risk:
        style = {"high": "bold red", "elevated": "yellow"}.get(level, "")
        risk.add_row(f"[{style}]{level}[/]" if style else level, f"{n:,}", f"{score:.1f}", f"{ltv:,.2f}")
    console.print(risk)
    dis = Table(title="Dissatisfaction by channel and signal")
    for col in ("channel", "signal", "dimension", "experiences", "touchpoints"):
        dis.add_column(col, justify="right" if col in ("experiences", "touchpoints") else "left")
    for channel, signal, dim, exps, tps in report.dissatisfaction:
        dis.add_row(channel, signal, dim, f"{exps:,}", f"{tps:,}")
    console.print(dis)
    alerts = Table(title="Latest churn-risk alerts (why: the experiences and signals)")
    for col in ("triggered at (UTC)", "customer", "strikes", "experiences", "signals", "lifetime value"):
        alerts.add_column(col)
    for when, customer, n, keys, signals, ltv in report.latest_alerts:
        alerts.add_row(f"{when:%Y-%m-%d %H:%M}", customer, str(n), ", ".join(keys), ", ".join(signals), f"{ltv:,.2f}")
    console.print(alerts)
    if report.rejections:
        console.print("Dead letters by reason: " + ", ".join(f"{reason} {n:,}" for reason, n in report.rejections))
