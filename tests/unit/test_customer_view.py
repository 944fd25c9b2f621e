"""`cxj customer`'s terminal view of a profile (pure: rendered into a recording console)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from rich.console import Console

from cxj.customer import SHOWN, render
from schemas.api import AlertView, ExperienceView, Profile, TouchpointView

T = datetime(2026, 11, 20, 12, tzinfo=UTC)


def _profile(strikes: int, risk: str) -> Profile:
    experiences = [
        ExperienceView(experience_key=f"contact:k{i}", occurred_at=T - timedelta(days=i), polarity="dissatisfying",
                       signals=["long_wait"], dimensions=["respect"], channels=["phone"])
        for i in range(strikes)
    ]  # fmt: skip
    touchpoints = [TouchpointView(event_id="e-1", occurred_at=T, channel="phone", event_type="contact_ended",
                                  source="pbx", signals=["long_wait"], journey_id="service:k0@C-1")]  # fmt: skip
    alerts = [AlertView(alert_id="a-1", level="high", dissatisfied_90d=3, experience_keys=["contact:k0"],
                        signals=["long_wait"], dimensions=["respect"], triggered_at=T)]  # fmt: skip
    return Profile.model_validate(dict(customer_key="C-1", keys=["C-1", "~device:d1"], churn_risk=risk,
                   dissatisfied_90d=strikes, satisfied_90d=0, experience_score=-40.0, lifetime_value=99.0,
                   last_event_at=T, experiences=experiences, open_journeys=[], touchpoints=touchpoints,
                   alerts=alerts if strikes >= 3 else []))  # fmt: skip


def _text(profile: Profile) -> str:
    console = Console(record=True, width=200)
    render(profile, console)
    return console.export_text()


def test_two_strikes_are_said_plainly_with_what_they_were() -> None:
    text = _text(_profile(2, "elevated"))
    assert "C-1" in text and "elevated" in text and "dissatisfied 2" in text
    assert "two dissatisfying experiences in the window: one more may lose this customer" in text
    assert "contact:k0" in text and "contact:k1" in text and "long_wait" in text
    assert "also known as: ~device:d1" in text
    assert "churn alerts" not in text and "last 1 touchpoints" in text


def test_a_long_history_shows_the_latest_experiences_and_says_how_many_there_are() -> None:
    text = _text(_profile(SHOWN + 3, "high"))
    assert f"the latest {SHOWN} of {SHOWN + 3}" in text
    assert f"contact:k{SHOWN - 1}" in text and f"contact:k{SHOWN}" not in text
    assert "three or more" in text and "churn alerts" in text and "a-1" not in text  # alerts show when, not ids


def test_no_strikes_no_warning() -> None:
    assert "may lose" not in _text(_profile(0, "none"))
