"""Stage 2: churn-risk alerts once per crossing into `high`, never per event, and what they carry."""

from __future__ import annotations

import itertools
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas.playbook import DEFAULT_PLAYBOOK, Playbook
from schemas.records import ChurnAlert, TouchpointRecord
from streams.domain.codec import Item
from streams.domain.outputs import Output, alert_row
from streams.domain.playbook import recommend
from streams.domain.processor import ALERT_NAMESPACE, PartitionState, alert_id
from streams.domain.signals import Classifier
from tests.factories import T0, days, policy, record
from tests.reference.codec import decode_state

NOW = 2_000_000_000_000


def complaint(case: str, day: float, key: str = "C1", **kwargs: Any) -> TouchpointRecord:
    identity = {"customer_id": key} if not key.startswith("~") else {"anonymous_id": key.split(":", 1)[1]}
    return record(
        key=key,
        event_type="complaint_filed",
        channel="wechat",
        at=T0 + days(day),
        identity=identity,
        context={"case_id": case},
        **kwargs,
    )


def process(ps: PartitionState, *recs: TouchpointRecord) -> Output:
    return ps.process([Item("tp", r.key, r) for r in recs], NOW, watermark=0)


def alerts_one_by_one(ps: PartitionState, recs: list[TouchpointRecord]) -> list[ChurnAlert]:
    return [a for rec in recs for a in process(ps, rec).alerts]


def customer_row(out: Output, key: str = "C1") -> Any:
    return [r for r in out.rows["customer_experience"] if r.customer_key == key][-1]


def test_the_third_dissatisfying_experience_raises_one_alert_with_its_reasons() -> None:
    order = record(event_type="order_placed", context={"order_id": "O1"}, metrics={"amount": 250.0})
    call = record(
        event_type="contact_ended",
        channel="phone",
        at=T0 + days(1),
        context={"contact_id": "k1"},
        metrics={"wait_seconds": 120, "transfers": 3, "handled_by": "human", "resolved": False},
    )
    delay = record(event_type="delivery_delayed", channel="logistics", at=T0 + days(2), context={"order_id": "O1"})
    third = complaint("K1", 3)
    out = process(PartitionState(0, policy()), order, call, delay, third)
    [alert] = out.alerts
    assert (alert.customer_key, alert.level, alert.previous_level, alert.dissatisfied_90d) == (
        "C1",
        "high",
        "elevated",
        3,
    )
    assert alert.experience_keys == ["case:K1", "contact:k1", "order:O1"]
    assert alert.signals == sorted(
        ["long_wait", "repeated_transfer", "unresolved_contact", "delivery_delayed", "complaint"]
    )
    assert alert.dimensions == ["fairness", "knowledge", "respect", "transparency"]
    assert alert.triggered_at == datetime.fromtimestamp(third.occurred_ms / 1000, UTC)
    assert alert.lifetime_value == 250.0
    row = customer_row(out)
    assert (row.dissatisfied_90d, row.churn_risk, row.lifetime_value) == (3, "high", 250.0)
    # The playbook's actions, most urgent first, as the topic and the churn_alerts row carry them.
    assert alert.actions == recommend(DEFAULT_PLAYBOOK, Classifier().rules, alert.signals, alert.dimensions)
    assert alert.actions and {"personal_callback", "proactive_status"} <= {a.action for a in alert.actions}
    stored = alert_row(alert)
    assert stored.actions == [a.action for a in alert.actions]
    assert stored.action_texts == [a.text for a in alert.actions]


def test_an_alert_carries_the_configured_playbook() -> None:
    playbook = Playbook.model_validate({
        "actions": {"call_now": {"text": "Call them now", "perception": "respect", "within_hours": 2},
                    "say_sorry": {"text": "Apologise in writing", "perception": "fairness"}},
        "rules": [{"dimensions": ["fairness"], "actions": ["say_sorry"]},
                  {"signals": ["complaint"], "actions": ["call_now"]}],
    })  # fmt: skip
    ps = PartitionState(0, policy(playbook=playbook))
    [alert] = process(ps, complaint("K1", 0), complaint("K2", 1), complaint("K3", 2)).alerts
    assert [(a.action, a.because, a.within_hours) for a in alert.actions] == [
        ("say_sorry", ["complaint"], None),  # both as urgent (complaint's weight): the playbook's order
        ("call_now", ["complaint"], 2),
    ]


def test_alerts_once_per_crossing_never_per_event() -> None:
    ps = PartitionState(0, policy())
    alerts = alerts_one_by_one(ps, [complaint(f"K{i}", i) for i in range(6)])
    assert len(alerts) == 1
    assert alerts[0].triggered_at == T0 + days(2)


def test_two_strikes_raise_nothing() -> None:
    ps = PartitionState(0, policy())
    assert alerts_one_by_one(ps, [complaint("K1", 0), complaint("K2", 1)]) == []


def test_one_call_with_three_bad_signals_is_one_strike_not_three() -> None:
    call = record(
        event_type="contact_ended",
        channel="phone",
        context={"contact_id": "k1"},
        metrics={"wait_seconds": 300, "transfers": 4, "handled_by": "none", "resolved": False},
    )
    survey = record(
        event_type="survey_response",
        channel="survey",
        at=T0 + days(1),
        context={"contact_id": "k1"},
        metrics={"csat": 1, "nps": 0, "ces": 1},
    )
    out = process(PartitionState(0, policy()), call, survey)
    assert out.alerts == []
    row = customer_row(out)
    assert (row.dissatisfied_90d, row.churn_risk) == (1, "low")


def test_duplicates_raise_no_second_alert() -> None:
    ps = PartitionState(0, policy())
    recs = [complaint(f"K{i}", i) for i in range(3)]
    assert len(process(ps, *recs).alerts) == 1
    again = process(ps, *recs, *recs)
    assert again.alerts == []
    assert again.duplicates == 6


def test_falling_below_high_and_crossing_again_alerts_again() -> None:
    ps = PartitionState(0, policy())
    first = [complaint(f"A{i}", i) for i in range(3)]
    quiet = record(event_type="page_view", at=T0 + days(150))  # the first three have left the window
    second = [complaint(f"B{i}", 150 + i) for i in range(3)]
    alerts = alerts_one_by_one(ps, [*first, quiet, *second])
    assert [a.triggered_at for a in alerts] == [T0 + days(2), T0 + days(152)]
    assert [a.previous_level for a in alerts] == ["elevated", "elevated"]
    assert alerts[1].experience_keys == ["case:B0", "case:B1", "case:B2"]
    assert alerts[0].alert_id != alerts[1].alert_id


def test_the_level_in_between_is_not_high() -> None:
    ps = PartitionState(0, policy())
    process(ps, *(complaint(f"A{i}", i) for i in range(3)))
    out = process(ps, record(event_type="page_view", at=T0 + days(150)))
    assert customer_row(out).churn_risk == "none"


def test_any_order_within_a_batch_raises_the_same_single_alert() -> None:
    recs = [complaint("K1", 0), complaint("K2", 5), complaint("K3", 9), complaint("K4", 12)]
    seen = set()
    for order in itertools.permutations(recs):
        [alert] = process(PartitionState(0, policy()), *order).alerts
        seen.add((alert.alert_id, alert.triggered_at, tuple(alert.experience_keys)))
    [(_, triggered_at, keys)] = seen
    assert (triggered_at, keys) == (T0 + days(9), ("case:K1", "case:K2", "case:K3"))


def test_a_late_event_moving_the_crossing_earlier_does_not_alert_that_crossing_twice() -> None:
    recs = [complaint("K1", 0), complaint("K2", 5), complaint("K4", 12), complaint("K3", 9)]
    alerts = alerts_one_by_one(PartitionState(0, policy()), recs)
    assert len(alerts) == 1


def test_the_alert_id_is_deterministic_for_the_same_crossing() -> None:
    recs = [complaint(f"K{i}", i) for i in range(3)]
    one = process(PartitionState(0, policy()), *recs).alerts
    two = process(PartitionState(5, policy()), *reversed(recs)).alerts
    assert [a.alert_id for a in one] == [a.alert_id for a in two]


def test_a_restored_partition_does_not_alert_the_same_crossing_again() -> None:
    ps = PartitionState(0, policy())
    assert len(process(ps, *(complaint(f"K{i}", i) for i in range(3))).alerts) == 1
    restored = PartitionState(0, policy())
    restored.restore(ps.data.items())
    assert process(restored, complaint("K9", 4)).alerts == []


def test_a_crossing_alerted_under_an_anonymous_key_is_not_alerted_again_after_the_merge() -> None:
    ps = PartitionState(0, policy())
    anon = "~anon:a1"
    assert len(process(ps, *(complaint(f"K{i}", i, key=anon) for i in range(3))).alerts) == 1
    moved = ps.process([Item("merge", anon, None, "C1")], NOW, watermark=0)
    assert [(it.kind, it.key) for it in moved.forward] == [("state", "C1")]
    merged = ps.process(moved.forward, NOW, watermark=0)
    assert merged.alerts == []
    assert decode_state(ps.data["C1"]).counters(policy()).level == "high"
    assert process(ps, complaint("K7", 5)).alerts == []


def test_merging_two_keys_that_together_reach_three_alerts_once() -> None:
    ps = PartitionState(0, policy())
    anon = "~anon:a1"
    process(ps, complaint("K1", 0), complaint("K2", 1, key=anon), complaint("K3", 2, key=anon))
    moved = ps.process([Item("merge", anon, None, "C1")], NOW, watermark=0)
    [alert] = ps.process(moved.forward, NOW, watermark=0).alerts
    assert (alert.customer_key, alert.triggered_at) == ("C1", T0 + days(2))
    assert alert.experience_keys == ["case:K1", "case:K2", "case:K3"]


def browse(day: float, key: str = "C1") -> TouchpointRecord:
    identity = {"customer_id": key} if not key.startswith("~") else {"anonymous_id": key.split(":", 1)[1]}
    return record(key=key, event_type="page_view", channel="web", at=T0 + days(day), identity=identity)


def test_a_crossing_learnt_more_than_30_days_after_it_happened_is_still_alerted() -> None:
    # The demo's case: one batch brings three strikes and, in the same batch, an event 40 days later.
    # Pruning moves the cut to 120 days before the latest event; nothing was pruned, so the crossing
    # is judged (it used to be skipped, leaving a high-risk customer without an alert).
    ps = PartitionState(0, policy())
    [alert] = process(ps, complaint("K1", 0), complaint("K2", 3), complaint("K3", 4), browse(44)).alerts
    assert alert.triggered_at == T0 + days(4)
    assert process(ps, complaint("K4", 45)).alerts == []


def test_a_merge_with_a_key_whose_latest_event_is_much_later_alerts_the_crossing_it_reveals() -> None:
    ps = PartitionState(0, policy())
    anon = "~anon:a1"
    process(ps, complaint("K1", 0), complaint("K2", 1))
    process(ps, complaint("K3", 2, key=anon), browse(60, key=anon))
    moved = ps.process([Item("merge", anon, None, "C1")], NOW, watermark=0)
    [alert] = ps.process(moved.forward, NOW, watermark=0).alerts
    assert (alert.customer_key, alert.triggered_at) == ("C1", T0 + days(2))
    assert decode_state(ps.data["C1"]).counters(policy()).level == "high"


def test_a_crossing_next_to_a_pruned_strike_is_not_judged_and_its_alert_is_not_repeated() -> None:
    ps = PartitionState(0, policy())
    # Strike at day 0 pruned once the latest event is beyond 0 + 90 + 30 days.
    assert process(ps, complaint("K0", 0), complaint("K1", 80), complaint("K2", 85)).alerts != []
    process(ps, browse(125))
    state = decode_state(ps.data["C1"])
    assert state.horizon == (T0 + days(0)).timestamp() * 1000
    # A third strike at day 89 would have made a crossing only if the pruned one did not count: not judged.
    assert process(ps, complaint("K3", 89)).alerts == []


HOLD = 30_000


def test_an_anonymous_key_holds_its_alert_and_the_customer_it_merges_into_alerts_the_episode_once() -> None:
    # The strikes arrive under a phone key and under the customer, each reaching three before the link.
    ps = PartitionState(0, policy(anonymous_hold=HOLD))
    anon = "~anon:a1"
    assert process(ps, *(complaint(f"A{i}", i, key=anon) for i in range(3))).alerts == []
    [own] = process(ps, *(complaint(f"K{i}", i + 0.5) for i in range(3))).alerts
    moved = ps.process([Item("merge", anon, None, "C1")], NOW + 1_000, watermark=0)
    assert ps.process(moved.forward, NOW + 1_000, watermark=0).alerts == []  # the customer alerted it
    assert ps.expire(NOW + 2 * HOLD, watermark=0).alerts == []
    assert own.customer_key == "C1" and decode_state(ps.data["C1"]).held == []


def test_a_held_episode_the_customer_had_not_alerted_is_alerted_under_the_customer_at_the_merge() -> None:
    ps = PartitionState(0, policy(anonymous_hold=HOLD))
    anon = "~anon:a1"
    process(ps, *(complaint(f"A{i}", i, key=anon) for i in range(3)))
    process(ps, complaint("K1", 1.5))
    moved = ps.process([Item("merge", anon, None, "C1")], NOW + 1_000, watermark=0)
    [alert] = ps.process(moved.forward, NOW + 1_000, watermark=0).alerts
    assert (alert.customer_key, alert.triggered_at) == ("C1", T0 + days(1.5))
    assert alert.experience_keys == ["case:A0", "case:A1", "case:K1"]  # the strikes of both keys
    assert ps.expire(NOW + 2 * HOLD, watermark=0).alerts == []


def test_an_anonymous_key_never_linked_alerts_under_its_own_key_when_the_hold_ends() -> None:
    ps = PartitionState(0, policy(anonymous_hold=HOLD))
    anon = "~anon:a1"
    assert process(ps, *(complaint(f"A{i}", i, key=anon) for i in range(3))).alerts == []
    assert ps.expire(NOW + HOLD - 1, watermark=0).alerts == []
    [alert] = ps.expire(NOW + HOLD, watermark=0).alerts
    assert (alert.customer_key, alert.triggered_at) == (anon, T0 + days(2))
    # The hold survives a restart (it is in the changelog), and the alert is not raised twice.
    restored = PartitionState(0, policy(anonymous_hold=HOLD))
    restored.restore(ps.data.items())
    assert restored.expire(NOW + 3 * HOLD, watermark=0).alerts == []
    held = PartitionState(0, policy(anonymous_hold=HOLD))
    process(held, *(complaint(f"A{i}", i, key=anon) for i in range(3)))
    again = PartitionState(0, policy(anonymous_hold=HOLD))
    again.restore(held.data.items())
    assert [a.customer_key for a in again.expire(NOW + HOLD, watermark=0).alerts] == [anon]


def test_a_held_episode_keeps_its_strikes_when_a_later_event_moves_the_cut_past_them() -> None:
    # Three strikes under an anonymous key, held; an event 125 days later moves the pruning cut (window +
    # lateness) past them before the hold ends. The held alert is delayed, never dropped: it is raised
    # when the hold ends, naming its strikes, and only once.
    ps = PartitionState(0, policy(anonymous_hold=HOLD))
    anon = "~anon:a1"
    assert process(ps, *(complaint(f"A{i}", i, key=anon) for i in range(3))).alerts == []
    assert process(ps, browse(125, key=anon)).alerts == []
    assert decode_state(ps.data[anon]).held == [(T0 + days(2)).timestamp() * 1000]
    [alert] = ps.expire(NOW + HOLD, watermark=0).alerts
    assert (alert.customer_key, alert.triggered_at) == (anon, T0 + days(2))
    assert alert.experience_keys == ["case:A0", "case:A1", "case:A2"]
    assert ps.expire(NOW + 3 * HOLD, watermark=0).alerts == []
    # Once alerted, the strikes can go: the next batch prunes them and alerts nothing more.
    assert process(ps, browse(126, key=anon)).alerts == []
    state = decode_state(ps.data[anon])
    assert state.held == [] and not [k for k in state.exps if k.startswith("case:")]


def test_a_held_episode_pruned_past_by_a_later_event_is_alerted_by_the_customer_it_merges_into() -> None:
    ps = PartitionState(0, policy(anonymous_hold=HOLD))
    anon = "~anon:a1"
    process(ps, *(complaint(f"A{i}", i, key=anon) for i in range(3)))
    process(ps, browse(125, key=anon))
    moved = ps.process([Item("merge", anon, None, "C1")], NOW + 1_000, watermark=0)
    [alert] = ps.process(moved.forward, NOW + 1_000, watermark=0).alerts
    assert (alert.customer_key, alert.triggered_at) == ("C1", T0 + days(2))
    assert alert.experience_keys == ["case:A0", "case:A1", "case:A2"]
    assert ps.expire(NOW + 2 * HOLD, watermark=0).alerts == []


@given(st.text(max_size=80), st.integers(-(2**63), 2**63 - 1))
def test_an_alert_id_is_the_uuid5_of_its_key_and_instant(key: str, instant: int) -> None:
    assert alert_id(key, instant) == str(uuid.uuid5(ALERT_NAMESPACE, f"{key}|{instant}"))


def test_large_row_buffers_let_go_inside_free_detached_are_freed_at_once_there() -> None:
    """What the writer's thread does after a flush (`Batch.clear`): one GIL hand-over for every buffer."""
    import cx_core

    views = [record(event_type="page_view", event_id=f"view-{n}", at=T0 + timedelta(seconds=n)) for n in range(300)]
    out = process(PartitionState(0, policy()), *views)
    touchpoints = out.rows["touchpoints"]
    assert isinstance(touchpoints, cx_core.Rows) and len(touchpoints) == 300
    cells = 300 * len(touchpoints[0])
    held = [touchpoints]
    del out, touchpoints
    assert cx_core.free_detached(held.clear) == cells
    # Dropped anywhere else, a buffer is freed where it is dropped: nothing is left for the next call.
    again = process(PartitionState(0, policy()), *views).rows["touchpoints"]
    del again
    assert cx_core.free_detached(lambda: None) == 0
    with pytest.raises(ZeroDivisionError):
        cx_core.free_detached(lambda: 1 / 0)
