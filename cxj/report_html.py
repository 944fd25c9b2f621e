"""`cxj report --html`: one self-contained HTML page (inline CSS and SVG, no scripts, no network).

Charts: risk distribution, dissatisfaction by channel and signal, the nine dimensions, the journey funnel, the
recovery rate after churn alerts; a
table of the top at-risk customers by lifetime value with the experiences and signals behind their alert.
Every chart is an `<svg class="chart">` whose `data-points` attribute says how many data points it drew, so a
headless browser check can tell a chart with data from an empty one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from html import escape
from typing import Final, get_args

from schemas.rules import Dimension
from sinks.clickhouse import ClickHouse
from sinks.queries import load

__all__ = ["HtmlReport", "collect_html", "render_html"]

# The nine consumer rights as perceptions (docs/contract.md), in the order of schemas.rules.Dimension.
DIMENSIONS: Final = get_args(Dimension)
_RISK_COLOURS: Final = {"high": "#c0392b", "elevated": "#e67e22", "low": "#f1c40f", "none": "#27ae60"}
_NEG, _POS = "#c0392b", "#27ae60"


@dataclass
class HtmlReport:
    generated_at: datetime
    risk: list[tuple[str, int, float, float]] = field(default_factory=list)
    channel_signal: list[tuple[str, str, str, int, int, int]] = field(default_factory=list)
    dimensions: dict[str, tuple[int, int]] = field(default_factory=dict)
    funnel: list[tuple[str, str, int, float, float]] = field(default_factory=list)
    top_customers: list[tuple[str, float, int, float, list[str], list[str]]] = field(default_factory=list)
    # recovery_by_breakdown's rows: (breakdown, value, alerts, decided, recovered, relapsed, lost, ..., recovery %)
    recovery: list[tuple[str, str, int, int, int, int, int, int, int, float | None]] = field(default_factory=list)


def collect_html(ch: ClickHouse) -> HtmlReport:
    db = ch.database
    report = HtmlReport(datetime.now(UTC))
    report.risk = [(str(r[0]), int(r[1]), float(r[2]), float(r[3])) for r in ch.execute(load("risk_distribution", db))]
    report.channel_signal = [tuple(r) for r in ch.execute(load("dissatisfaction_by_channel_signal", db))]  # type: ignore[misc]
    totals: dict[str, list[int]] = {d: [0, 0] for d in DIMENSIONS}
    for _day, dimension, negative, positive in ch.execute(load("dimensions_daily", db)):
        slot = totals.setdefault(str(dimension), [0, 0])
        slot[0] += int(negative)
        slot[1] += int(positive)
    report.dimensions = {d: (n, p) for d, (n, p) in totals.items()}
    report.funnel = [(str(r[0]), str(r[1]), int(r[2]), float(r[3]), float(r[4]))
                     for r in ch.execute(load("journey_funnel", db))]  # fmt: skip
    report.top_customers = [(str(r[0]), float(r[1]), int(r[2]), float(r[3]), list(r[4]), list(r[5]))
                            for r in ch.execute(load("top_at_risk_customers", db))]  # fmt: skip
    report.recovery = [tuple(r) for r in ch.execute(load("recovery_by_breakdown", db))]  # type: ignore[misc]
    return report


# --- charts ------------------------------------------------------------------------------------


def bar_chart(title: str, bars: list[tuple[str, float, str]], *, width: int = 640, unit: str = "") -> str:
    """Horizontal bars: (label, value, colour). Values label the bars; the scale is the largest value."""
    row, label_w, pad = 22, 210, 8
    height = pad * 2 + row * max(len(bars), 1)
    top = max((v for _, v, _ in bars), default=0) or 1
    parts = [f'<svg class="chart" role="img" aria-label="{escape(title)}" data-points="{len(bars)}" '
             f'width="{width}" height="{height}" viewBox="0 0 {width} {height}">']  # fmt: skip
    if not bars:
        parts.append(f'<text x="{pad}" y="{pad + 14}" class="empty">no data yet</text>')
    for i, (label, value, colour) in enumerate(bars):
        y = pad + i * row
        w = max(1.0, (width - label_w - 90) * value / top)
        parts.append(
            f'<text x="{label_w - 6}" y="{y + 15}" text-anchor="end">{escape(label)}</text>'
            f'<rect x="{label_w}" y="{y + 3}" width="{w:.1f}" height="{row - 6}" fill="{colour}"><title>'
            f"{escape(label)}: {value:,.0f}{unit}</title></rect>"
            f'<text x="{label_w + w + 6:.1f}" y="{y + 15}">{value:,.0f}{unit}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def paired_chart(title: str, pairs: list[tuple[str, float, float]], *, width: int = 640) -> str:
    """Two bars per label: dissatisfying (red) and satisfying (green) experiences."""
    bars: list[tuple[str, float, str]] = []
    for label, negative, positive in pairs:
        bars.append((f"{label} -", negative, _NEG))
        bars.append((f"{label} +", positive, _POS))
    return bar_chart(title, bars, width=width)


# --- page --------------------------------------------------------------------------------------

_CSS: Final = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px auto;max-width:1000px;color:#222}
h1{font-size:22px;margin:0 0 4px} h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #ddd}
.meta{color:#666} svg text{font-size:12px;fill:#333} .empty{fill:#999}
table{border-collapse:collapse;width:100%} th,td{border-bottom:1px solid #eee;padding:4px 6px;text-align:left;
vertical-align:top} th{background:#fafafa} td.n{text-align:right;font-variant-numeric:tabular-nums}
.tags span{display:inline-block;background:#f4f4f4;border-radius:3px;padding:0 5px;margin:1px;font-size:12px}
"""


def render_html(report: HtmlReport) -> str:
    risk_bars = [(level, float(n), _RISK_COLOURS.get(level, "#888")) for level, n, _, _ in report.risk]
    signals = [(f"{channel} · {signal}", float(exps), _NEG)
               for channel, signal, _, exps, _, _ in report.channel_signal[:20]]  # fmt: skip
    dims = [(d, float(n), float(p)) for d, (n, p) in report.dimensions.items()]
    funnel = [(f"{jtype} · {status}", float(n), {"completed": _POS, "abandoned": _NEG}.get(status, "#3498db"))
              for jtype, status, n, _, _ in report.funnel]  # fmt: skip
    recovery = [(f"{by.replace('_', ' ')} · {value}", float(pct), _POS)
                for by, value, _, decided, *_, pct in report.recovery if decided and pct is not None]  # fmt: skip
    customers = sum(n for _, n, _, _ in report.risk)
    high = next((n for level, n, _, _ in report.risk if level == "high"), 0)
    rows = "".join(
        f"<tr><td>{escape(key)}</td><td class=n>{ltv:,.2f}</td><td class=n>{strikes}</td><td class=n>{score:.1f}</td>"
        f"<td class=tags>{''.join(f'<span>{escape(e)}</span>' for e in exps)}</td>"
        f"<td class=tags>{''.join(f'<span>{escape(s)}</span>' for s in sigs)}</td></tr>"
        for key, ltv, strikes, score, exps, sigs in report.top_customers
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>cx-journeys report</title>
<meta name="viewport" content="width=device-width,initial-scale=1"><style>{_CSS}</style></head>
<body>
<h1>cx-journeys: customer experience report</h1>
<p class="meta">Generated {report.generated_at:%Y-%m-%d %H:%M} UTC · {customers:,} customers · {high:,} at high churn
risk (3+ dissatisfying experiences in 90 days)</p>
<h2>Customers by churn risk</h2>
{bar_chart("Customers by churn risk", risk_bars)}
<h2>Dissatisfying experiences by channel and signal (90 days)</h2>
{bar_chart("Dissatisfaction by channel and signal", signals)}
<h2>The nine dimensions: dissatisfying (-) and satisfying (+) experiences</h2>
{paired_chart("Experience dimensions", dims)}
<h2>Journey funnel by type and status</h2>
{bar_chart("Journey funnel", funnel)}
<h2>Recovery after churn alerts: recovery rate (% of decided alerts) by first signal, channel, dimension, action</h2>
{bar_chart("Recovery rate", recovery, unit="%")}
<h2>Top at-risk customers by lifetime value</h2>
<table id="top-customers"><thead><tr><th>customer</th><th>lifetime value</th><th>strikes</th><th>score</th>
<th>experiences</th><th>signals</th></tr></thead><tbody>{rows or "<tr><td colspan=6>none</td></tr>"}</tbody></table>
</body></html>
"""
