"""The experiences a profile shows, from a customer's signal rows (pure), and the ids it resolves."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from schemas.errors import ConfigError
from schemas.settings import Settings
from sinks.customers import experiences, identifier_of, resolve_key

T = datetime(2026, 11, 20, 12, tzinfo=UTC)


def _row(key: str, signal: str, days_before: float, polarity: int, dimension: str = "respect",
         channel: str = "phone") -> tuple[str, str, datetime, int, str, str]:  # fmt: skip
    return (key, signal, (T - timedelta(days=days_before)).replace(tzinfo=None), polarity, dimension, channel)


def test_an_experience_is_dissatisfying_from_its_first_negative_signal_and_shows_only_those() -> None:
    rows = [
        _row("contact:k1", "long_wait", 3, -1),
        _row("contact:k1", "no_human_answer", 3, -1),
        _row("contact:k1", "high_csat", 2, +1, "evaluation", "survey"),  # a survey about it: still one, negative
        _row("order:o1", "proactive_update", 1, +1, "transparency", "sms"),
    ]
    [order, contact] = experiences(rows, T, 90)
    assert (contact.experience_key, contact.polarity, contact.signals, contact.dimensions) == (
        "contact:k1", "dissatisfying", ["long_wait", "no_human_answer"], ["respect"])  # fmt: skip
    assert contact.channels == ["phone", "survey"] and contact.occurred_at == T - timedelta(days=3)
    assert (order.polarity, order.signals, order.dimensions) == ("satisfying", ["proactive_update"], ["transparency"])


def test_the_window_is_t_minus_the_window_to_t_by_the_first_signal_that_counts() -> None:
    rows = [
        _row("case:old", "complaint", 90, -1),  # exactly 90 days before t: outside (t - 90 days, t]
        _row("case:edge", "complaint", 89.99, -1),
        _row("case:late", "complaint", 100, -1),
        _row("case:late", "long_wait", 1, -1),  # first negative 100 days ago: does not count any more
        _row("case:now", "complaint", 0, -1),
    ]
    assert [e.experience_key for e in experiences(rows, T, 90)] == ["case:now", "case:edge"]
    assert [e.experience_key for e in experiences(rows, T, 120)] == ["case:now", "case:edge", "case:old", "case:late"]
    assert experiences(rows, None, 90) == []


def test_an_identifier_is_hashed_as_ingest_stores_it_and_a_bad_one_is_a_clear_error() -> None:
    settings = Settings(pii_secret="s" * 32)
    phone = identifier_of("phone:+86 138 0013 8000", settings)
    assert phone == identifier_of("phone:13800138000", settings) and phone.startswith("phone:")
    assert "13800138000" not in phone
    assert identifier_of("device:d-1", settings) == "device:d-1"
    for bad in ("fax:123", "phone:", "phone:not a number", "x" * 600, "a\x00b"):
        with pytest.raises(ConfigError):
            identifier_of(bad, settings)


def test_a_plain_customer_key_is_taken_as_given_without_asking_clickhouse() -> None:
    settings = Settings(pii_secret="s" * 32)
    # No connection is needed (None would fail if used): only identifiers and anonymous keys are looked up.
    assert resolve_key(None, settings, " C-1 ") == "C-1"  # type: ignore[arg-type]
    assert resolve_key(None, settings, "order:o1") == "order:o1"  # type: ignore[arg-type]  # not an identifier kind
    with pytest.raises(ConfigError):
        resolve_key(None, settings, "")  # type: ignore[arg-type]


@pytest.mark.parametrize("text", ["~", "~x", "~fax:1", "~phone:", "phone:not a number", "email:", "email:no-at"])
def test_an_identifier_no_touchpoint_could_have_made_names_nobody(text: str) -> None:
    """A 404 for the service, not a 400: the id is readable, it just is nobody's (found by schemathesis)."""
    assert resolve_key(None, Settings(pii_secret="s" * 32), text) is None  # type: ignore[arg-type]
