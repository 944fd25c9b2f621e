"""CustomerState: experiences, dissatisfied_90d / satisfied_90d, duplicates, order, merges, LTV."""

from __future__ import annotations

import itertools
import random
from datetime import timedelta
from typing import Any

import pytest

from schemas.records import TouchpointRecord
from streams.domain.customer import DAY_MS, Policy
from tests.factories import T0, days, policy, record
from tests.reference.customer import Applied, CustomerState, event_hash
from tests.reference.signals import classify

P = policy()
T0_MS = int(T0.timestamp() * 1000)


def apply(state: CustomerState, rec: TouchpointRecord, p: Policy = P) -> Applied | None:
    return state.apply(rec, classify(p.classifier, rec), event_hash(rec.event_id), p)


def state_of(records: list[TouchpointRecord], key: str = "C1", p: Policy = P) -> CustomerState:
    state = CustomerState(key)
    for rec in records:
        apply(state, rec, p)
    return state


def complaint(case: str, at: Any = T0, **kwargs: Any) -> TouchpointRecord:
    return record(event_type="complaint_filed", channel="wechat", at=at, context={"case_id": case}, **kwargs)


def praise(contact: str, at: Any = T0, **kwargs: Any) -> TouchpointRecord:
    return record(
        event_type="survey_response",
        channel="survey",
        at=at,
        context={"contact_id": contact},
        metrics={"csat": 5},
        **kwargs,
    )


def bad_call(contact: str, at: Any = T0) -> TouchpointRecord:
    return record(
        event_type="contact_ended",
        channel="phone",
        at=at,
        context={"contact_id": contact},
        metrics={"wait_seconds": 300, "transfers": 3, "handled_by": "human", "resolved": False},
    )


# --- one experience per episode --------------------------------------------------------------


def test_a_call_with_three_negative_signals_is_one_dissatisfying_experience() -> None:
    call = bad_call("c1")
    state = CustomerState("C1")
    applied = apply(state, call)
    assert applied is not None
    assert {s.name for s in applied.signals} == {"long_wait", "repeated_transfer", "unresolved_contact"}
    assert state.counters(P).dissatisfied == 1


def test_a_later_survey_about_that_contact_adds_no_experience() -> None:
    survey = record(
        event_type="survey_response",
        channel="survey",
        at=T0 + days(1),
        context={"contact_id": "c1"},
        metrics={"csat": 1, "nps": 0},
    )
    state = state_of([bad_call("c1"), survey])
    assert len(state.exps) == 1
    assert state.counters(P).dissatisfied == 1


def test_separate_episodes_are_separate_experiences() -> None:
    state = state_of([bad_call("c1"), bad_call("c2", T0 + days(1)), complaint("K1", T0 + days(2))])
    assert state.counters(P).dissatisfied == 3


# --- the rolling window (t - 90d, t], t = latest occurred_at --------------------------------------


@pytest.mark.parametrize(
    ("later", "counted"),
    [
        (timedelta(0), True),
        (days(89), True),
        (days(90) - timedelta(milliseconds=1), True),
        (days(90), False),
        (days(200), False),
    ],
    ids=["same-time", "89d", "90d-1ms", "90d", "200d"],
)
def test_dissatisfied_counts_first_negatives_in_the_90_day_window_ending_at_the_latest_event(
    later: timedelta, counted: bool
) -> None:
    state = state_of([complaint("K1", T0), record(event_type="page_view", at=T0 + later)])
    assert state.counters(P).dissatisfied == int(counted)


def test_t_is_event_time_not_arrival_order() -> None:
    latest_first = state_of([record(event_type="page_view", at=T0 + days(100)), complaint("K1", T0)])
    assert latest_first.latest == T0_MS + 100 * DAY_MS
    assert latest_first.counters(P).dissatisfied == 0


def test_an_experience_counts_from_its_first_negative_signal() -> None:
    # The case went wrong on day 0; a new negative on day 95 does not pull it back into the window.
    state = state_of([complaint("K1", T0), complaint("K1", T0 + days(95))])
    assert state.counters(P).dissatisfied == 0


def test_window_length_is_configurable() -> None:
    short = policy(window=10 * DAY_MS)
    recs = [complaint("K1", T0), complaint("K2", T0 + days(5)), complaint("K3", T0 + days(12))]
    assert state_of(recs, p=short).counters(short).dissatisfied == 2
    assert state_of(recs).counters(P).dissatisfied == 3


# --- satisfied_90d ---------------------------------------------------------------------------------


def test_satisfied_counts_positive_experiences_without_a_negative_one() -> None:
    recs = [
        praise("c1", T0),
        praise("c2", T0 + days(1)),
        bad_call("c3", T0 + days(2)),
        praise("c3", T0 + days(3)),  # positive, but the episode already went wrong
        record(event_type="notification_sent", channel="sms", at=T0 + days(4), context={"order_id": "O1"}),
    ]
    counters = state_of(recs).counters(P)
    assert (counters.satisfied, counters.dissatisfied) == (3, 1)


def test_a_negative_signal_turns_a_satisfied_experience_into_a_dissatisfied_one() -> None:
    state = state_of([praise("c1", T0), bad_call("c1", T0 + days(1))])
    counters = state.counters(P)
    assert (counters.satisfied, counters.dissatisfied) == (0, 1)


def test_satisfied_uses_the_same_window() -> None:
    state = state_of([praise("c1", T0), record(event_type="page_view", at=T0 + days(90))])
    assert state.counters(P).satisfied == 0


# --- churn level -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("n", "level"), [(0, "none"), (1, "low"), (2, "elevated"), (3, "high"), (5, "high")])
def test_churn_level_follows_dissatisfied_90d(n: int, level: str) -> None:
    state = state_of([complaint(f"K{i}", T0 + days(i)) for i in range(n)] or [record()])
    assert state.counters(P).level == level
    assert state.counters(P).dissatisfied == n


def test_score_is_in_bounds_and_negative_experiences_lower_it() -> None:
    good = state_of([praise(f"c{i}", T0 + days(i)) for i in range(5)]).counters(P).score
    mixed = state_of([praise(f"c{i}", T0 + days(i)) for i in range(5)] + [complaint("K", T0 + days(5))])
    bad = state_of([complaint(f"K{i}", T0 + days(i)) for i in range(40)]).counters(P).score
    assert -100 <= bad < mixed.counters(P).score < good <= 100


# --- duplicates and order -----------------------------------------------------------------------


def test_a_duplicate_event_id_changes_nothing() -> None:
    recs = [bad_call("c1"), complaint("K1", T0 + days(1)), praise("c9", T0 + days(2))]
    once = state_of(recs)
    twice = state_of(recs)
    for rec in recs:
        assert apply(twice, rec) is None
    assert twice == once
    assert twice.counters(P) == once.counters(P)


def test_a_resent_event_with_other_content_but_the_same_id_changes_nothing() -> None:
    first = complaint("K1", T0)
    state = state_of([first])
    before = state.counters(P)
    assert apply(state, complaint("K2", T0 + days(1), event_id=first.event_id)) is None
    assert state.counters(P) == before


def _mixed_history() -> list[TouchpointRecord]:
    return [
        bad_call("c1", T0),
        praise("c1", T0 + days(1)),
        complaint("K1", T0 + days(10)),
        record(
            event_type="contact_started",
            channel="phone",
            at=T0 + days(11),
            context={"case_id": "K1", "contact_id": "x1"},
        ),
        record(
            event_type="contact_started",
            channel="phone",
            at=T0 + days(12),
            context={"case_id": "K1", "contact_id": "x2"},
        ),
        record(event_type="delivery_delayed", channel="logistics", at=T0 + days(40), context={"order_id": "O1"}),
        record(event_type="order_placed", at=T0 + days(39), context={"order_id": "O1"}, metrics={"amount": 120.5}),
        praise("c5", T0 + days(95)),
        record(event_type="page_view", at=T0 + days(96)),
    ]


def _summary(state: CustomerState) -> tuple[Any, ...]:
    exps = {k: (e.first_neg, e.first_pos, e.mask) for k, e in state.exps.items()}
    return state.counters(P), state.lifetime_value(), exps, state.latest


def test_out_of_order_arrival_gives_the_same_counts() -> None:
    history = _mixed_history()
    expected = _summary(state_of(history))
    assert expected[0].dissatisfied == 2  # K1 (day 10) and O1 (day 40); c1 (day 0) left the window
    rng = random.Random(5)
    for _ in range(30):
        rng.shuffle(history)
        assert _summary(state_of(history)) == expected


# --- merging an anonymous state ----------------------------------------------------------------


def test_absorbing_an_anonymous_state_merges_experiences_counters_and_orders() -> None:
    customer = state_of(
        [
            complaint("K1", T0),
            record(event_type="order_placed", context={"order_id": "O1"}, metrics={"amount": 100.0}),
        ]
    )
    anon = state_of(
        [
            bad_call("c1", T0 + days(1)),
            complaint("K2", T0 + days(2), identity={"anonymous_id": "a1"}),
            record(
                event_type="order_placed",
                at=T0 + days(2),
                context={"order_id": "O2"},
                metrics={"amount": 50.0},
            ),
        ],
        key="~anon:a1",
    )
    customer.absorb(anon, P)
    counters = customer.counters(P)
    assert (counters.dissatisfied, counters.level) == (3, "high")
    assert customer.lifetime_value() == 150.0
    assert customer.aliases == ["~anon:a1"]
    assert customer.latest == T0_MS + 2 * DAY_MS


def test_absorb_gives_the_same_state_as_seeing_everything_under_one_key() -> None:
    history = _mixed_history()
    whole = state_of(history)
    for split in range(1, len(history)):
        merged = state_of(history[:split])
        merged.absorb(state_of(history[split:], key="~anon:a1"), P)
        assert _summary(merged) == _summary(whole)


def test_a_touchpoint_already_seen_under_the_anonymous_key_is_a_duplicate_after_the_merge() -> None:
    rec = complaint("K1", T0)
    customer = CustomerState("C1")
    customer.absorb(state_of([rec], key="~anon:a1"), P)
    assert apply(customer, rec) is None
    assert customer.counters(P).dissatisfied == 1


# --- lifetime value --------------------------------------------------------------------------------


def test_lifetime_value_is_the_sum_of_order_placed_amounts() -> None:
    recs = [
        record(event_type="order_placed", context={"order_id": "O1"}, metrics={"amount": 120.5}),
        record(event_type="order_placed", context={"order_id": "O2"}, metrics={"amount": 79.5}),
        record(event_type="payment_completed", context={"order_id": "O1"}, metrics={"amount": 120.5}),
        record(event_type="refund_issued", context={"order_id": "O2"}, metrics={"amount": 79.5}),
        record(event_type="order_placed", context={"order_id": "O3"}),  # no amount
        record(event_type="order_placed", metrics={"amount": 999.0}),  # no order id
    ]
    assert state_of(recs).lifetime_value() == 200.0


def test_an_order_placed_twice_counts_once_with_its_latest_amount_in_any_order() -> None:
    recs = [
        record(event_type="order_placed", at=T0, context={"order_id": "O1"}, metrics={"amount": 100.0}),
        record(event_type="order_placed", at=T0 + days(1), context={"order_id": "O1"}, metrics={"amount": 80.0}),
    ]
    for order in itertools.permutations(recs):
        assert state_of(list(order)).lifetime_value() == 80.0


# --- alerts once per crossing ---------------------------------------------------------------------


def test_new_crossings_reports_each_crossing_once() -> None:
    state = state_of([complaint(f"K{i}", T0 + days(i)) for i in range(3)])
    [(instant, before, keys, mask)] = state.new_crossings(P)
    assert (instant, before) == (T0_MS + 2 * DAY_MS, 2)
    assert keys == ["case:K0", "case:K1", "case:K2"]
    assert P.classifier.names(mask) == ["complaint"]
    assert state.new_crossings(P) == []
    apply(state, complaint("K3", T0 + days(3)))
    assert state.new_crossings(P) == []
