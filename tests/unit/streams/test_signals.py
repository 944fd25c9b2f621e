"""Every row of the Contract 2 signal table, both polarities, boundaries, and experience keys."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from schemas.rules import DEFAULT_RULES, RepeatContactRule, SignalRules
from streams.domain.customer import DAY_MS, Policy
from streams.domain.signals import Classifier as RuleTable
from streams.domain.signals import load_rules
from tests.factories import T0, days, policy, record
from tests.reference.customer import CustomerState, event_hash
from tests.reference.signals import Classifier, classify, experience_key

CLASSIFIER = Classifier()

# The table of Contract 2: signal -> (polarity, dimension).
CONTRACT_SIGNALS = {
    "no_human_answer": (-1, "respect"),
    "long_wait": (-1, "respect"),
    "repeated_transfer": (-1, "respect"),
    "unresolved_contact": (-1, "knowledge"),
    "repeat_contact": (-1, "knowledge"),
    "payment_failed": (-1, "safety"),
    "delivery_delayed": (-1, "transparency"),
    "complaint": (-1, "fairness"),
    "low_csat": (-1, "evaluation"),
    "detractor": (-1, "evaluation"),
    "high_effort": (-1, "evaluation"),
    "negative_review": (-1, "community"),
    "negative_social": (-1, "community"),
    "first_contact_resolution": (1, "knowledge"),
    "high_csat": (1, "evaluation"),
    "promoter": (1, "evaluation"),
    "positive_review": (1, "evaluation"),
    "proactive_update": (1, "transparency"),
    "compensation": (1, "compensation"),
}


def fired(event_type: str, metrics: dict[str, Any] | None = None, classifier: Classifier = CLASSIFIER) -> set[str]:
    return {s.name for s in classifier.classify(record(event_type=event_type, metrics=metrics))}


def test_the_default_signals_are_exactly_the_contract_table() -> None:
    assert {s.name: (s.polarity, s.dimension) for s in CLASSIFIER.signals} == CONTRACT_SIGNALS


@pytest.mark.parametrize("name", sorted(CONTRACT_SIGNALS))
def test_weights_pull_the_score_the_way_of_the_polarity(name: str) -> None:
    signal = CLASSIFIER.by_name[name]
    assert signal.weight * signal.polarity > 0


def test_masks_split_signals_by_polarity() -> None:
    negatives = {n for n, (pol, _) in CONTRACT_SIGNALS.items() if pol < 0}
    assert set(CLASSIFIER.names(CLASSIFIER.negative_mask)) == negatives
    assert set(CLASSIFIER.names(CLASSIFIER.positive_mask)) == set(CONTRACT_SIGNALS) - negatives


CASES: dict[str, tuple[str, dict[str, Any] | None, set[str]]] = {
    # no_human_answer / unresolved_contact / first_contact_resolution: contact_ended only
    "ended-nobody": ("contact_ended", {"handled_by": "none"}, {"no_human_answer"}),
    "ended-nobody-unresolved": (
        "contact_ended",
        {"handled_by": "none", "resolved": False},
        {"no_human_answer", "unresolved_contact"},
    ),
    "ended-nobody-resolved": ("contact_ended", {"handled_by": "none", "resolved": True}, {"no_human_answer"}),
    "ended-bot-unresolved": (
        "contact_ended",
        {"handled_by": "bot", "resolved": False},
        {"no_human_answer", "unresolved_contact"},
    ),
    "ended-bot-unknown": ("contact_ended", {"handled_by": "bot"}, set()),
    "ended-bot-resolved": (
        "contact_ended",
        {"handled_by": "bot", "resolved": True},
        {"first_contact_resolution"},
    ),
    "ended-human-resolved": (
        "contact_ended",
        {"handled_by": "human", "resolved": True},
        {"first_contact_resolution"},
    ),
    "ended-human-unresolved": (
        "contact_ended",
        {"handled_by": "human", "resolved": False},
        {"unresolved_contact"},
    ),
    "ended-resolved-nobody-said": ("contact_ended", {"resolved": True}, set()),
    "fcr-at-limits": (
        "contact_ended",
        {"handled_by": "human", "resolved": True, "transfers": 1, "wait_seconds": 59},
        {"first_contact_resolution"},
    ),
    "fcr-wait-59.9": (
        "contact_ended",
        {"handled_by": "bot", "resolved": True, "wait_seconds": 59.9},
        {"first_contact_resolution"},
    ),
    "fcr-broken-by-transfers": (
        "contact_ended",
        {"handled_by": "human", "resolved": True, "transfers": 2, "wait_seconds": 10},
        {"repeated_transfer"},
    ),
    "fcr-broken-by-wait": (
        "contact_ended",
        {"handled_by": "human", "resolved": True, "transfers": 0, "wait_seconds": 60},
        {"long_wait"},
    ),
    "started-nobody": ("contact_started", {"handled_by": "none", "resolved": False}, set()),
    "answered-resolved": ("agent_answered", {"handled_by": "human", "resolved": True}, set()),
    # long_wait: any event type
    "wait-0": ("contact_started", {"wait_seconds": 0}, set()),
    "wait-59": ("contact_started", {"wait_seconds": 59}, set()),
    "wait-59.99": ("agent_answered", {"wait_seconds": 59.99}, set()),
    "wait-60": ("contact_started", {"wait_seconds": 60}, {"long_wait"}),
    "wait-3600": ("chat_message", {"wait_seconds": 3600}, {"long_wait"}),
    # repeated_transfer
    "transfers-1": ("transferred", {"transfers": 1}, set()),
    "transfers-2": ("transferred", {"transfers": 2}, {"repeated_transfer"}),
    "transfers-5": ("contact_ended", {"transfers": 5}, {"repeated_transfer"}),
    # one-event signals
    "payment-failed": ("payment_failed", None, {"payment_failed"}),
    "delivery-delayed": ("delivery_delayed", None, {"delivery_delayed"}),
    "complaint": ("complaint_filed", None, {"complaint"}),
    "notification": ("notification_sent", None, {"proactive_update"}),
    "compensation": ("compensation_offered", None, {"compensation"}),
    # csat 1-5
    "csat-1": ("survey_response", {"csat": 1}, {"low_csat"}),
    "csat-2": ("survey_response", {"csat": 2}, {"low_csat"}),
    "csat-3": ("survey_response", {"csat": 3}, set()),
    "csat-4": ("survey_response", {"csat": 4}, {"high_csat"}),
    "csat-5": ("survey_response", {"csat": 5}, {"high_csat"}),
    # nps 0-10
    "nps-0": ("survey_response", {"nps": 0}, {"detractor"}),
    "nps-6": ("survey_response", {"nps": 6}, {"detractor"}),
    "nps-7": ("survey_response", {"nps": 7}, set()),
    "nps-8": ("survey_response", {"nps": 8}, set()),
    "nps-9": ("survey_response", {"nps": 9}, {"promoter"}),
    "nps-10": ("survey_response", {"nps": 10}, {"promoter"}),
    # ces 1-7 (7 = very easy)
    "ces-1": ("survey_response", {"ces": 1}, {"high_effort"}),
    "ces-3": ("survey_response", {"ces": 3}, {"high_effort"}),
    "ces-4": ("survey_response", {"ces": 4}, set()),
    "ces-7": ("survey_response", {"ces": 7}, set()),
    # rating 1-5
    "rating-1": ("review_posted", {"rating": 1}, {"negative_review"}),
    "rating-2": ("review_posted", {"rating": 2}, {"negative_review"}),
    "rating-3": ("review_posted", {"rating": 3}, set()),
    "rating-4": ("review_posted", {"rating": 4}, {"positive_review"}),
    "rating-5": ("review_posted", {"rating": 5}, {"positive_review"}),
    # sentiment -1..1
    "sentiment--1": ("social_mention", {"sentiment": -1}, {"negative_social"}),
    "sentiment--0.5": ("social_mention", {"sentiment": -0.5}, {"negative_social"}),
    "sentiment--0.49": ("social_mention", {"sentiment": -0.49}, set()),
    "sentiment-0": ("social_mention", {"sentiment": 0.0}, set()),
    "sentiment-1": ("social_mention", {"sentiment": 1.0}, set()),
    # several at once, and nothing
    "mixed-survey": (
        "survey_response",
        {"csat": 1, "nps": 10, "ces": 2},
        {"low_csat", "promoter", "high_effort"},
    ),
    "page-view": ("page_view", None, set()),
    "order-placed": ("order_placed", {"amount": 99.0}, set()),
    "delivered": ("delivered", None, set()),
    "payment-completed": ("payment_completed", None, set()),
}


@pytest.mark.parametrize(("event_type", "metrics", "expected"), CASES.values(), ids=CASES.keys())
def test_signal_table(event_type: str, metrics: dict[str, Any] | None, expected: set[str]) -> None:
    assert fired(event_type, metrics) == expected


@pytest.mark.parametrize(
    ("context", "key"),
    [
        ({"case_id": "K", "contact_id": "C", "order_id": "O"}, "case:K"),
        ({"case_id": "K", "order_id": "O"}, "case:K"),
        ({"contact_id": "C", "order_id": "O"}, "contact:C"),
        ({"contact_id": "C", "session_id": "S"}, "contact:C"),
        ({"order_id": "O"}, "order:O"),
        ({"session_id": "S", "store_id": "X"}, "event:{event_id}"),
        (None, "event:{event_id}"),
        ({"case_id": "", "contact_id": "C"}, "contact:C"),
    ],
)
def test_experience_key_is_the_first_of_case_contact_order_event(context: dict[str, str] | None, key: str) -> None:
    rec = record(context=context)
    assert experience_key(rec) == key.format(event_id=rec.event_id)


# --- repeat_contact: stateful, kept by the customer ----------------------------------------------


def _contacts(specs: list[tuple[float, dict[str, str]]], p: Policy | None = None) -> list[set[str]]:
    """Apply contact_started touchpoints in the given order; signals each one got, in input order."""
    p = p or policy()
    state = CustomerState("C1")
    got: dict[str, set[str]] = {}
    recs = [record(event_type="contact_started", channel="phone", at=T0 + days(d), context=c) for d, c in specs]
    for rec in recs:
        applied = state.apply(rec, classify(p.classifier, rec), event_hash(rec.event_id), p)
        assert applied is not None
        got.setdefault(rec.event_id, set()).update(s.name for s in applied.signals)
        for retro in applied.retro:
            got.setdefault(retro.event_id, set()).add(retro.signal.name)
    return [got.get(r.event_id, set()) for r in recs]


@pytest.mark.parametrize(
    ("gap_days", "repeat"),
    [(0.5, True), (6.99, True), (7, True), (7 + 1 / DAY_MS, False), (8, False)],
    ids=["12h", "6.99d", "7d", "7d+1ms", "8d"],
)
@pytest.mark.parametrize("anchor", ["case_id", "order_id"])
def test_repeat_contact_is_a_contact_about_the_same_case_or_order_within_7_days(
    gap_days: float, repeat: bool, anchor: str
) -> None:
    first, second = _contacts([(0, {anchor: "X", "contact_id": "c1"}), (gap_days, {anchor: "X", "contact_id": "c2"})])
    assert "repeat_contact" not in first
    assert ("repeat_contact" in second) is repeat


@pytest.mark.parametrize(
    "contexts",
    [
        [{"case_id": "A", "contact_id": "c1"}, {"case_id": "B", "contact_id": "c2"}],
        [{"order_id": "A", "contact_id": "c1"}, {"case_id": "A", "contact_id": "c2"}],
        [{"contact_id": "c1"}, {"contact_id": "c2"}],
        [{"case_id": "A", "contact_id": "c1"}, {"case_id": "A", "contact_id": "c1"}],
    ],
    ids=["other-case", "order-vs-case", "no-anchor", "same-contact-resent"],
)
def test_no_repeat_contact_without_another_contact_about_the_same_anchor(
    contexts: list[dict[str, str]],
) -> None:
    results = _contacts([(0, contexts[0]), (1, contexts[1])])
    assert all("repeat_contact" not in r for r in results)


def test_repeat_contact_found_when_the_later_contact_arrives_first() -> None:
    in_order = _contacts([(0, {"case_id": "X", "contact_id": "c1"}), (2, {"case_id": "X", "contact_id": "c2"})])
    reversed_ = _contacts([(2, {"case_id": "X", "contact_id": "c2"}), (0, {"case_id": "X", "contact_id": "c1"})])
    assert in_order == [set(), {"repeat_contact"}]
    assert reversed_ == [{"repeat_contact"}, set()]


def test_repeat_contact_window_is_configurable() -> None:
    rules = SignalRules(rules=DEFAULT_RULES.rules, repeat_contact=RepeatContactRule(within_days=2))
    p = Policy(classifier=RuleTable(rules), journeys=policy().journeys)
    spec = [(0, {"case_id": "X", "contact_id": "c1"}), (3, {"case_id": "X", "contact_id": "c2"})]
    assert _contacts(spec) == [set(), {"repeat_contact"}]
    assert _contacts(spec, p) == [set(), set()]


def test_repeat_contact_can_be_switched_off() -> None:
    p = Policy(
        classifier=RuleTable(SignalRules(rules=DEFAULT_RULES.rules, repeat_contact=None)),
        journeys=policy().journeys,
    )
    spec = [(0, {"case_id": "X", "contact_id": "c1"}), (1, {"case_id": "X", "contact_id": "c2"})]
    assert _contacts(spec, p) == [set(), set()]


# --- rules are configurable -------------------------------------------------------------------


def test_load_rules_defaults_to_the_contract_table() -> None:
    assert load_rules(None) == DEFAULT_RULES


def test_load_rules_reads_a_replacement_table(tmp_path: Path) -> None:
    path = tmp_path / "rules.json"
    path.write_text(
        '{"rules": [{"signal": "very_long_wait", "polarity": -1, "dimension": "respect", "weight": -1,'
        ' "any_of": [[{"field": "wait_seconds", "op": "ge", "value": 300}]]}], "repeat_contact": null}'
    )
    classifier = Classifier(load_rules(path))
    assert fired("contact_started", {"wait_seconds": 300}, classifier) == {"very_long_wait"}
    assert fired("contact_started", {"wait_seconds": 299}, classifier) == set()
    assert fired("complaint_filed", None, classifier) == set()


def test_the_default_table_round_trips_through_json(tmp_path: Path) -> None:
    path = tmp_path / "rules.json"
    path.write_text(DEFAULT_RULES.model_dump_json())
    assert load_rules(path) == DEFAULT_RULES


@pytest.mark.parametrize(
    "rule",
    [
        '{"signal": "x_bad", "polarity": -1, "dimension": "respect", "weight": 1}',
        '{"signal": "x_bad", "polarity": 1, "dimension": "respect", "weight": -1}',
        '{"signal": "x_bad", "polarity": -1, "dimension": "mood", "weight": -1}',
        '{"signal": "X", "polarity": -1, "dimension": "respect", "weight": -1}',
        '{"signal": "complaint", "polarity": -1, "dimension": "respect", "weight": -1}',
    ],
    ids=[
        "negative-with-positive-weight",
        "positive-with-negative-weight",
        "unknown-dimension",
        "bad-slug",
        "duplicate-name",
    ],
)
def test_a_bad_rule_table_is_refused(tmp_path: Path, rule: str) -> None:
    path = tmp_path / "rules.json"
    path.write_text(
        '{"rules": [{"signal": "complaint", "polarity": -1, "dimension": "fairness", "weight": -4, '
        f'"event_types": ["complaint_filed"]}}, {rule}]}}'
    )
    with pytest.raises(ValidationError):
        load_rules(path)
