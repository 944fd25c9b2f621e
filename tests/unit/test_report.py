"""The CX report's pure parts: rendering a Report and reading it back, no ClickHouse."""

from __future__ import annotations

from datetime import UTC, datetime

from rich.console import Console

from cxj.report import Report, render


def _report() -> Report:
    return Report(
        touchpoints=1_234_567,
        dead_letters=42,
        customers=900,
        alerts=7,
        journeys=3_210,
        risk=[("high", 7, -61.34, 12_345.5), ("elevated", 20, -20.0, 0.0), ("none", 873, 12.3, 99_000.0)],
        dissatisfaction=[("phone", "long_wait", "respect", 120, 340)],
        latest_alerts=[
            (
                datetime(2026, 11, 20, 10, 11, tzinfo=UTC),
                "C-42",
                3,
                ["case:K1", "contact:c1", "order:O1"],
                ["complaint", "long_wait"],
                1_999.9,
            ),
        ],
        rejections=[("invalid_field", 30), ("missing_identity", 12)],
        satisfaction=[("respect", 40, 25.0, 38, -42.1, 0, None), ("transparency", 12, 91.7, 10, 60.0, 9, 6.1)],
        proactive=[(0, 300, 50, 40.0, 48, -20.8), (1, 120, 30, 86.7, 25, 44.0)],
        recovery=[
            ("action", "personal_callback", 6, 5, 2, 2, 1, 0, 1, 40.0),
            ("first_signal", "complaint", 4, 3, 1, 1, 1, 0, 1, 33.3),
            ("first_signal", "long_wait", 3, 3, 1, 1, 0, 1, 0, 33.3),
        ],
        recovery_informed=[(0, 5, 4, 1, 25.0), (1, 2, 2, 1, 50.0)],
    )


def _text(report: Report) -> str:
    console = Console(record=True, width=200, color_system=None)
    render(report, console)
    return console.export_text()


def test_render_shows_the_totals() -> None:
    text = _text(_report())
    assert "1,234,567 touchpoints" in text
    assert "900 customers" in text
    assert "3,210 journeys" in text
    assert "7 churn alerts" in text
    assert "42 dead letters" in text


def test_render_shows_risk_levels_with_score_and_lifetime_value() -> None:
    lines = _text(_report()).splitlines()
    high = next(line for line in lines if "high" in line and "12,345.50" in line)
    assert "-61.3" in high


def test_render_shows_why_an_alert_was_raised() -> None:
    text = _text(_report())
    assert "2026-11-20 10:11" in text
    assert "case:K1, contact:c1, order:O1" in text
    assert "complaint, long_wait" in text
    assert "1,999.90" in text


def test_render_lists_dead_letters_by_reason_only_when_there_are_some() -> None:
    assert "Dead letters by reason: invalid_field 30, missing_identity 12" in _text(_report())
    empty = _report()
    empty.rejections = []
    assert "Dead letters by reason" not in _text(empty)


def test_customers_at_a_level() -> None:
    report = _report()
    assert (report.customers_at("high"), report.customers_at("none"), report.customers_at("low")) == (
        7,
        873,
        0,
    )


def test_an_empty_report_renders() -> None:
    text = _text(Report())
    assert "0 touchpoints" in text
    assert Report().as_dict()["risk"] == []


def test_render_shows_satisfaction_with_the_responses_behind_each_figure() -> None:
    text = _text(_report())
    assert "respect" in text and "25.0 (40)" in text and "-42 (38)" in text
    assert "6.10 (9)" in text and "transparency" in text
    row = next(line for line in text.splitlines() if "respect" in line and "25.0" in line)
    assert row.split("│")[-2].strip() == "-"  # no CES answers about respect: a dash, not 0
    assert (
        "Kept informed? with a proactive update: 120 customers, NPS +44 (25), CSAT 86.7 (30)%; without a "
        "proactive update: 300 customers, NPS -21 (48)"
    ) in text


def test_no_survey_answers_no_satisfaction_section() -> None:
    assert "Satisfaction" not in _text(Report()) and "Kept informed" not in _text(Report())


def test_render_shows_what_became_of_alerted_customers() -> None:
    report = _report()
    # Each alert once: the first-signal rows (every alert has one), not the action rows.
    assert report.outcomes() == {"alerts": 7, "decided": 6, "recovered": 2, "relapsed": 2, "lost": 1,
                                 "unresolved": 1, "watching": 1}  # fmt: skip
    text = _text(report)
    assert "7 alerts · 6 decided: 2 recovered, 2 relapsed, 1 lost, 1 neither · 1 still in their window" in text
    callback = next(line for line in text.splitlines() if "personal_callback" in line)
    assert "40.0% (5)" in callback
    assert "with a proactive update after the alert: 2 alerts, recovery 50.0% (2)" in text
    assert "without a proactive update after the alert: 5 alerts, recovery 25.0% (4)" in text
    report.recovery = []
    assert "Recovery after churn alerts" not in _text(report)
