"""Journeys of Contract 2: anchors, browse sessions, terminal events, idle timeouts."""

from __future__ import annotations

import itertools
from datetime import timedelta
from typing import Any

import pytest

from schemas.records import TouchpointRecord
from streams.domain.journeys import JourneyPolicy
from tests.factories import T0, days, record
from tests.reference.journeys import Journey, anchor, assign, channel_names, merge_journeys

MINUTE = 60_000
DAY = 86_400_000
# The contract's default idle timeouts: browse 30 min, service 7 days, purchase 30 days.
POLICY = JourneyPolicy({"browse": 30 * MINUTE, "service": 7 * DAY, "purchase": 30 * DAY}, retention=7 * DAY)


def at(minutes: float, **kwargs: Any) -> TouchpointRecord:
    return record(at=T0 + timedelta(minutes=minutes), **kwargs)


def feed(records: list[TouchpointRecord], policy: JourneyPolicy = POLICY) -> dict[str, Journey]:
    journeys: dict[str, Journey] = {}
    for rec in records:
        assign(journeys, rec, policy)
    return journeys


def browse_view(journeys: dict[str, Journey]) -> set[tuple[str, int, int]]:
    return {(j.jid, j.started, j.last) for j in journeys.values()}


@pytest.mark.parametrize(
    ("context", "expected"),
    [
        ({"order_id": "O1"}, ("purchase", "purchase:O1")),
        ({"case_id": "K1"}, ("service", "service:case:K1")),
        ({"contact_id": "c1"}, ("service", "service:contact:c1")),
        ({"case_id": "K1", "contact_id": "c1"}, ("service", "service:case:K1")),
        ({"case_id": "K1", "order_id": "O1"}, ("service", "service:case:K1")),
        ({"contact_id": "c1", "order_id": "O1"}, ("service", "service:contact:c1")),
        ({"session_id": "s1"}, None),
        (None, None),
    ],
)
def test_anchor_purchase_by_order_service_by_case_else_contact(
    context: dict[str, str] | None, expected: tuple[str, str] | None
) -> None:
    assert anchor(record(context=context)) == expected


def test_touchpoints_of_one_order_form_one_purchase_journey() -> None:
    journeys = feed(
        [
            at(0, event_type="order_placed", context={"order_id": "O1"}),
            at(60 * 24, event_type="shipment_dispatched", channel="logistics", context={"order_id": "O1"}),
            at(60 * 48, event_type="delivered", channel="logistics", context={"order_id": "O1"}),
            at(10, event_type="order_placed", context={"order_id": "O2"}),
        ]
    )
    j = journeys["purchase:O1"]
    assert (j.jtype, j.started, j.last) == ("purchase", at(0).occurred_ms, at(60 * 48).occurred_ms)
    assert channel_names(j.channels) == ["web", "logistics"]
    assert set(journeys) == {"purchase:O1", "purchase:O2"}


# --- browse sessions -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("minutes", "sessions"),
    [
        ([0, 29], 1),
        ([0, 29.99], 1),
        ([0, 30], 2),
        ([0, 31], 2),
        ([0, 20, 40, 60, 80], 1),  # inactivity is measured from the latest touchpoint
        ([0, 20, 51, 60], 2),
        ([0, 31, 62, 93], 4),
    ],
)
def test_browse_touchpoints_split_by_30_minutes_of_inactivity(minutes: list[float], sessions: int) -> None:
    journeys = feed([at(m) for m in minutes])
    assert len(journeys) == sessions
    assert all(j.jtype == "browse" for j in journeys.values())


def test_a_browse_session_is_named_after_its_earliest_touchpoint_in_any_order() -> None:
    recs = [at(m) for m in (0, 10, 25, 50, 70, 200, 215)]
    expected = browse_view(feed(recs))
    assert {jid for jid, *_ in expected} == {f"browse:{recs[0].event_id}", f"browse:{recs[5].event_id}"}
    for order in itertools.permutations(recs):
        assert browse_view(feed(list(order))) == expected


def test_a_late_touchpoint_bridging_two_sessions_fuses_them() -> None:
    first, second, bridge = at(0), at(50), at(25)
    journeys = feed([first, second])
    assert len(journeys) == 2
    journey, retired = assign(journeys, bridge, POLICY)
    assert list(journeys) == [f"browse:{first.event_id}"] == [journey.jid]
    assert [r.jid for r in retired] == [f"browse:{second.event_id}"]
    assert (journey.started, journey.last) == (first.occurred_ms, second.occurred_ms)


def test_anchored_touchpoints_never_join_a_browse_session() -> None:
    journeys = feed([at(0), at(5, event_type="order_placed", context={"order_id": "O1"}), at(10)])
    assert sorted(j.jtype for j in journeys.values()) == ["browse", "purchase"]
    assert journeys["purchase:O1"].started == journeys["purchase:O1"].last == at(5).occurred_ms


# --- status --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("event_type", "context", "metrics", "completed"),
    [
        ("delivered", {"order_id": "O1"}, None, True),
        ("order_cancelled", {"order_id": "O1"}, None, True),
        ("case_resolved", {"case_id": "K1"}, None, True),
        ("contact_ended", {"contact_id": "c1"}, {"resolved": True, "handled_by": "human"}, True),
        ("contact_ended", {"case_id": "K1"}, {"resolved": True}, True),
        ("contact_ended", {"contact_id": "c1"}, {"resolved": False}, False),
        ("contact_ended", {"contact_id": "c1"}, None, False),
        ("shipment_update", {"order_id": "O1"}, None, False),
        ("review_posted", {"order_id": "O1"}, {"rating": 5}, False),
        ("refund_issued", {"order_id": "O1"}, None, False),
        ("complaint_filed", {"case_id": "K1"}, None, False),
    ],
)
def test_terminal_events_complete_a_journey(
    event_type: str, context: dict[str, str], metrics: dict[str, Any] | None, completed: bool
) -> None:
    rec = at(0, event_type=event_type, context=context, metrics=metrics)
    journey, _ = assign({}, rec, POLICY)
    status = journey.status(rec.occurred_ms, POLICY)
    assert status == ("completed" if completed else "open")
    assert journey.ended_at(status) == (rec.occurred_ms if completed else None)


@pytest.mark.parametrize(
    ("context", "timeout"),
    [
        (None, 30 * MINUTE),
        ({"case_id": "K1"}, 7 * DAY),
        ({"contact_id": "c1"}, 7 * DAY),
        ({"order_id": "O1"}, 30 * DAY),
    ],
    ids=["browse-30min", "service-case-7d", "service-contact-7d", "purchase-30d"],
)
def test_an_idle_journey_is_abandoned_after_its_type_timeout(context: dict[str, str] | None, timeout: int) -> None:
    first = at(0, context=context)
    last = at(10, context=context)
    journeys = feed([first, last])
    [journey] = journeys.values()
    assert journey.status(last.occurred_ms + timeout - 1, POLICY) == "open"
    assert journey.status(last.occurred_ms + timeout, POLICY) == "abandoned"
    assert journey.ended_at("abandoned") == last.occurred_ms


def test_idle_timeouts_are_configurable() -> None:
    short = JourneyPolicy({"browse": MINUTE, "service": MINUTE, "purchase": MINUTE}, retention=DAY)
    [journey] = feed([at(0, context={"order_id": "O1"})], short).values()
    assert journey.status(journey.last + MINUTE, short) == "abandoned"
    assert journey.status(journey.last + MINUTE, POLICY) == "open"
    assert feed([at(0), at(2)], short).keys() != feed([at(0), at(2)]).keys()


def test_a_completed_journey_stays_completed_after_the_timeout() -> None:
    placed = at(0, event_type="order_placed", context={"order_id": "O1"})
    delivered = at(60, event_type="delivered", context={"order_id": "O1"})
    review = at(60 * 24 * 3, event_type="review_posted", context={"order_id": "O1"}, metrics={"rating": 4})
    [journey] = feed([placed, delivered, review]).values()
    assert journey.status(review.occurred_ms + 365 * DAY, POLICY) == "completed"
    assert journey.ended_at("completed") == delivered.occurred_ms
    assert journey.last == review.occurred_ms


def test_the_earliest_terminal_event_ends_the_journey_whatever_the_order() -> None:
    recs = [
        at(0, event_type="case_opened", context={"case_id": "K1"}),
        at(60, event_type="case_resolved", context={"case_id": "K1"}),
        at(600, event_type="case_resolved", context={"case_id": "K1"}),
    ]
    for order in itertools.permutations(recs):
        [journey] = feed(list(order)).values()
        assert journey.terminal == recs[1].occurred_ms


# --- merging journeys of two keys -------------------------------------------------------------


def test_merge_takes_over_journeys_and_fuses_overlapping_browse_sessions() -> None:
    mine = feed([at(0), at(20), at(0, event_type="order_placed", context={"order_id": "O1"})])
    theirs = feed(
        [
            at(40),
            at(60 * 24 * 2, event_type="delivered", channel="logistics", context={"order_id": "O1"}),
            at(60 * 24 * 5),
        ]
    )
    retired = merge_journeys(mine, list(theirs.values()), POLICY)
    browse = sorted((j for j in mine.values() if j.jtype == "browse"), key=lambda j: j.started)
    assert [(j.started, j.last) for j in browse] == [
        (at(0).occurred_ms, at(40).occurred_ms),
        (at(60 * 24 * 5).occurred_ms, at(60 * 24 * 5).occurred_ms),
    ]
    assert len(retired) == 1
    order = mine["purchase:O1"]
    assert order.terminal == at(60 * 24 * 2).occurred_ms
    assert channel_names(order.channels) == ["web", "logistics"]


def test_absorb_is_order_free() -> None:
    a = feed([at(0, context={"case_id": "K"}), at(30, event_type="case_resolved", context={"case_id": "K"})])
    b = feed(
        [
            at(-60, context={"case_id": "K"}, channel="phone"),
            at(days(2).total_seconds() / 60, context={"case_id": "K"}),
        ]
    )
    left, right = a["service:case:K"], b["service:case:K"]
    one = Journey(left.jid, left.jtype, left.started, left.last, left.terminal, left.channels)
    two = Journey(right.jid, right.jtype, right.started, right.last, right.terminal, right.channels)
    one.absorb(right)
    two.absorb(left)
    assert (one.started, one.last, one.terminal, one.channels) == (
        two.started,
        two.last,
        two.terminal,
        two.channels,
    )
    assert one.started == at(-60).occurred_ms and one.terminal == at(30).occurred_ms
