"""`cxj customer ID`: the profile a front-line agent sees, in the terminal (rich)."""

from __future__ import annotations

from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from schemas.api import Profile

__all__ = ["SHOWN", "render"]

SHOWN = 10  # experiences in the table; `--json` has them all
_RISK_STYLE = {"none": "green", "low": "yellow", "elevated": "dark_orange", "high": "bold red"}


def _when(value: object) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if hasattr(value, "strftime") else "-"


def render(p: Profile, console: Console) -> None:
    """Header (risk and counters), the experiences that count, open journeys, alerts, then the timeline."""
    head = Text.assemble(
        (p.customer_key, "bold"),
        "  risk ",
        (p.churn_risk, _RISK_STYLE[p.churn_risk]),
        f"  dissatisfied {p.dissatisfied_90d}  satisfied {p.satisfied_90d}  score {p.experience_score:+.1f}",
        f"  lifetime value {p.lifetime_value:,.2f}  last event {_when(p.last_event_at)}",
    )
    if len(p.keys) > 1:
        head.append(f"\nalso known as: {', '.join(k for k in p.keys if k != p.customer_key)}", style="dim")
    parts: list[object] = [head]
    if p.churn_risk in ("elevated", "high"):
        strikes = "two dissatisfying experiences" if p.dissatisfied_90d == 2 else "three or more"
        parts.append(Text(f"{strikes} in the window: one more may lose this customer", style="bold red"))

    more = f" (the latest {SHOWN} of {len(p.experiences)})" if len(p.experiences) > SHOWN else ""
    experiences = Table("when", "experience", "polarity", "signals", "dimensions", "channels",
                        title=f"experiences that count{more}", title_justify="left")  # fmt: skip
    for e in p.experiences[:SHOWN]:
        style = "red" if e.polarity == "dissatisfying" else "green"
        experiences.add_row(_when(e.occurred_at), e.experience_key, Text(e.polarity, style=style),
                            ", ".join(e.signals), ", ".join(e.dimensions), ", ".join(e.channels))  # fmt: skip
    parts.append(experiences)

    if p.open_journeys:
        journeys = Table("journey", "type", "started", "last", "touchpoints", "channels", "dissatisfying",
                         title="open journeys", title_justify="left")  # fmt: skip
        for j in p.open_journeys:
            journeys.add_row(j.journey_id, j.journey_type, _when(j.started_at), _when(j.last_event_at),
                             str(j.touchpoints), ", ".join(j.channels), "yes" if j.dissatisfying else "")  # fmt: skip
        parts.append(journeys)

    if p.alerts:
        alerts = Table("triggered", "level", "dissatisfied", "experiences", "signals",
                       title="churn alerts", title_justify="left")  # fmt: skip
        for a in p.alerts:
            alerts.add_row(_when(a.triggered_at), a.level, str(a.dissatisfied_90d), ", ".join(a.experience_keys),
                           ", ".join(a.signals))  # fmt: skip
        parts.append(alerts)
        if p.alerts[0].actions:  # the latest alert's playbook, most urgent first
            todo = Table("", "what to do", title="recovery (latest alert)", title_justify="left")
            for n, action in enumerate(p.alerts[0].actions, 1):
                todo.add_row(str(n), action.text)
            parts.append(todo)

    timeline = Table("when", "channel", "event", "signals", "journey", "source",
                     title=f"last {len(p.touchpoints)} touchpoints", title_justify="left")  # fmt: skip
    for t in p.touchpoints:
        timeline.add_row(_when(t.occurred_at), t.channel, t.event_type, Text(", ".join(t.signals), style="red")
                         if t.signals else "", t.journey_id, t.source)  # fmt: skip
    parts.append(timeline)
    console.print(Panel(Group(*parts), title="customer profile", title_align="left"))  # type: ignore[arg-type]
