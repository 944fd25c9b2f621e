"""The CX report: what ClickHouse says about risk, dissatisfaction and alerts, as tables."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from rich.console import Console
from rich.table import Table

from sinks.clickhouse import ClickHouse
from sinks.queries import load

__all__ = ["Report", "collect", "render"]


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
    # (dimension, csat responses, CSAT %, nps responses, NPS points, ces responses, CES mean)
    satisfaction: list[tuple[Any, ...]] = field(default_factory=list)
    # (proactive update 0/1, customers, csat responses, CSAT %, nps responses, NPS points)
    proactive: list[tuple[Any, ...]] = field(default_factory=list)
    # (breakdown, value, alerts, decided, recovered, relapsed, lost, unresolved, watching, recovery %)
    recovery: list[tuple[Any, ...]] = field(default_factory=list)
    # (proactive update 0/1, alerts, decided, recovered, recovery %)
    recovery_informed: list[tuple[Any, ...]] = field(default_factory=list)

    def outcomes(self) -> dict[str, int]:
        """Alerts by outcome (decided), and those still in their window: one breakdown's rows count each alert
        once (every alert has a first signal)."""
        rows = [r for r in self.recovery if r[0] == "first_signal"]
        names = ("alerts", "decided", "recovered", "relapsed", "lost", "unresolved", "watching")
        return {name: sum(int(r[2 + i]) for r in rows) for i, name in enumerate(names)}

    def customers_at(self, level: str) -> int:
        return next((n for risk, n, *_ in self.risk if risk == level), 0)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def collect(ch: ClickHouse, *, limit: int = 10) -> Report:
    """Read the report's figures, each from its query in sinks/queries/ (exact reads: FINAL)."""
    db = ch.database
    totals = ch.query(load("report_totals", db))[0]
    return Report(
        touchpoints=totals[0],
        dead_letters=totals[1],
        customers=totals[2],
        alerts=totals[3],
        journeys=totals[4],
        risk=[(str(r[0]), int(r[1]), float(r[2]), float(r[3])) for r in ch.query(load("risk_distribution", db))],
        dissatisfaction=[tuple(r[:5]) for r in ch.query(load("dissatisfaction_by_channel_signal", db))][: limit * 2],  # type: ignore[misc]
        latest_alerts=[tuple(r) for r in ch.query(load("latest_alerts", db))][:limit],  # type: ignore[misc]
        rejections=[tuple(r) for r in ch.query(load("dead_letters_by_reason", db))],  # type: ignore[misc]
        satisfaction=[tuple(r) for r in ch.query(load("satisfaction_by_dimension", db))],
        proactive=[tuple(r) for r in ch.query(load("satisfaction_by_proactive_update", db))],
        recovery=[tuple(r) for r in ch.query(load("recovery_by_breakdown", db))],
        recovery_informed=[tuple(r) for r in ch.query(load("recovery_by_proactive_update", db))],
    )


def _figure(value: Any, responses: int, spec: str) -> str:
    """A satisfaction figure with the responses behind it, or a dash where there are none."""
    return "-" if value is None or not responses else f"{spec.format(float(value))} ({responses:,})"


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
    dis = Table(title="Dissatisfaction by channel and signal, last 90 days")
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
    if report.satisfaction:
        sat = Table(title="Satisfaction by the dimension of the rated experience, last 90 days (responses)")
        for col in ("dimension", "CSAT % (4-5)", "NPS", "CES (1-7)"):
            sat.add_column(col, justify="left" if col == "dimension" else "right")
        for dim, n_csat, csat, n_nps, nps, n_ces, ces in report.satisfaction:
            sat.add_row(
                dim, _figure(csat, n_csat, "{:.1f}"), _figure(nps, n_nps, "{:+.0f}"), _figure(ces, n_ces, "{:.2f}")
            )
        console.print(sat)
    informed = {bool(row[0]): row for row in report.proactive}
    if informed:
        parts = [f"{'with' if got else 'without'} a proactive update: {row[1]:,} customers, NPS "
                 f"{_figure(row[5], row[4], '{:+.0f}')}, CSAT {_figure(row[3], row[2], '{:.1f}')}%"
                 for got, row in sorted(informed.items(), reverse=True)]  # fmt: skip
        console.print("Kept informed? " + "; ".join(parts))
    _render_recovery(report, console)
    if report.rejections:
        console.print("Dead letters by reason: " + ", ".join(f"{reason} {n:,}" for reason, n in report.rejections))


def _rate(pct: Any, decided: int) -> str:
    return "-" if pct is None or not decided else f"{float(pct):.1f}% ({decided:,})"


def _render_recovery(report: Report, console: Console) -> None:
    """What became of the alerted customers (alert_outcomes): totals, then the rate by breakdown."""
    if not report.recovery:
        return
    n = report.outcomes()
    console.print(
        f"Recovery after churn alerts: {n['alerts']:,} alerts · {n['decided']:,} decided: {n['recovered']:,} "
        f"recovered, {n['relapsed']:,} relapsed, {n['lost']:,} lost, {n['unresolved']:,} neither · "
        f"{n['watching']:,} still in their window"
    )
    table = Table(title="Recovery rate (% of decided alerts, decided) by what the alert was about")
    for col in ("by", "value", "alerts", "recovered", "relapsed", "lost", "recovery rate"):
        table.add_column(col, justify="left" if col in ("by", "value") else "right")
    for by, value, alerts, decided, recovered, relapsed, lost, _, _, pct in report.recovery:
        table.add_row(by.replace("_", " "), value, f"{alerts:,}", f"{recovered:,}", f"{relapsed:,}", f"{lost:,}",
                      _rate(pct, decided))  # fmt: skip
    console.print(table)
    informed = {bool(row[0]): row for row in report.recovery_informed}
    if informed:
        parts = [f"{'with' if got else 'without'} a proactive update after the alert: {row[1]:,} alerts, recovery "
                 f"{_rate(row[4], row[2])}" for got, row in sorted(informed.items(), reverse=True)]  # fmt: skip
        console.print("Kept informed after an alert? " + "; ".join(parts))
