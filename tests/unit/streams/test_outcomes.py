"""What became of a customer after a churn alert (issue 17): recovered, relapsed, lost, pending, in event time.

Run against the stage the worker runs (the native core), through its Python API: rows of `alert_outcomes`,
the highest version per alert being the outcome, as ClickHouse's ReplacingMergeTree keeps it.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.records import TouchpointRecord
from schemas.rows import AlertOutcomeRow, Table
from streams.domain.codec import Item
from streams.domain.customer import DAY_MS
from streams.domain.outputs import Output
from streams.domain.processor import PartitionState
from tests.factories import T0, days, policy, record

NOW = 2_000_000_000_000
ALERT_AT = T0 + days(2)  # the third complaint
END = int(ALERT_AT.timestamp() * 1000) + 30 * DAY_MS  # the default window's end


def at_ms(when: datetime) -> int:
    return int(when.timestamp() * 1000)


def complaint(case: str, day: float, key: str = "C1") -> TouchpointRecord:
    identity = {"customer_id": key} if not key.startswith("~") else {"anonymous_id": key.split(":", 1)[1]}
    return record(key=key, event_type="complaint_filed", channel="wechat", at=T0 + days(day), identity=identity,
                  context={"case_id": case}, event_id=f"{key}-{case}-{day}")  # fmt: skip


def compensation(case: str, day: float, key: str = "C1") -> TouchpointRecord:
    identity = {"customer_id": key} if not key.startswith("~") else {"anonymous_id": key.split(":", 1)[1]}
    return record(key=key, event_type="compensation_offered", channel="email", at=T0 + days(day),
                  identity=identity, context={"case_id": case}, event_id=f"{key}-comp-{case}-{day}")  # fmt: skip


def login(day: float, key: str = "C1") -> TouchpointRecord:
    return record(key=key, event_type="login", channel="app", at=T0 + days(day), identity={"customer_id": key},
                  event_id=f"{key}-login-{day}")  # fmt: skip


STRIKES = [complaint("K1", 0), complaint("K2", 1), complaint("K3", 2)]


def process(ps: PartitionState, recs: list[TouchpointRecord], watermark: int = 0) -> Output:
    return ps.process([Item("tp", r.key, r) for r in recs], NOW, watermark=watermark)


def rows(*outs: Output) -> list[AlertOutcomeRow]:
    return [r for out in outs for r in out.rows.get(Table.ALERT_OUTCOMES, [])]


def final(*outs: Output) -> dict[str, tuple[Any, ...]]:
    """alert_id -> (customer_key, outcome, decided, outcome_at): the highest version, the last of equals."""
    best: dict[str, AlertOutcomeRow] = {}
    for r in rows(*outs):
        if r.alert_id not in best or r.version >= best[r.alert_id].version:
            best[r.alert_id] = r
    return {a: (r.customer_key, r.outcome, r.decided, r.outcome_at) for a, r in best.items()}


def at_event_time(ps: PartitionState, ms: int) -> Output:
    """Another customer's touchpoint at `ms` moves the partition's event time there; then the timer runs."""
    other = record(key="C9", event_type="login", channel="app", at=datetime.fromtimestamp(ms / 1000, UTC),
                   identity={"customer_id": "C9"}, event_id=f"C9-login-{ms}")  # fmt: skip
    process(ps, [other])
    return ps.expire(NOW, 0)


def after_the_window(ps: PartitionState) -> Output:
    return at_event_time(ps, END + 1)


def test_an_alert_starts_pending_and_a_compensation_recovers_once_the_window_passes() -> None:
    ps = PartitionState(0, policy())
    first = process(ps, STRIKES)
    [alert] = first.alerts
    [pending] = rows(first)
    assert (pending.alert_id, pending.customer_key, pending.outcome, pending.decided, pending.outcome_at) == (
        alert.alert_id, "C1", "pending", 0, None)  # fmt: skip
    assert pending.triggered_at == at_ms(ALERT_AT) // 1000
    repaired = process(ps, [compensation("K3", 5)])
    assert final(repaired) == {alert.alert_id: ("C1", "recovered", 0, at_ms(T0 + days(5)) // 1000)}
    assert process(ps, [login(6)]).rows.get(Table.ALERT_OUTCOMES) is None  # nothing changed: nothing written
    decided = after_the_window(ps)
    assert final(decided) == {alert.alert_id: ("C1", "recovered", 1, at_ms(T0 + days(5)) // 1000)}
    assert rows(after_the_window(ps)) == []  # decided once


def test_a_new_dissatisfying_experience_in_the_window_is_a_relapse_at_once() -> None:
    ps = PartitionState(0, policy())
    process(ps, STRIKES)
    process(ps, [compensation("K3", 5)])
    relapsed = process(ps, [complaint("K4", 9)])
    assert list(final(relapsed).values()) == [("C1", "relapsed", 1, at_ms(T0 + days(9)) // 1000)]


def test_a_dissatisfying_experience_after_the_window_is_no_relapse() -> None:
    ps = PartitionState(0, policy())
    [alert] = process(ps, STRIKES).alerts
    process(ps, [compensation("K3", 5)])
    later = process(ps, [complaint("K5", 40)])  # the customer's own event time passed the window
    assert final(later)[alert.alert_id] == ("C1", "recovered", 1, at_ms(T0 + days(5)) // 1000)


def test_no_touchpoint_in_the_window_is_lost_once_the_partitions_event_time_passes_it() -> None:
    ps = PartitionState(0, policy())
    [alert] = process(ps, STRIKES).alerts
    assert rows(at_event_time(ps, END)) == []  # the window's last instant: still pending
    lost = after_the_window(ps)
    assert final(lost) == {alert.alert_id: ("C1", "lost", 1, END // 1000)}


def test_the_wall_clock_decides_nothing_only_event_time_does() -> None:
    """A backlog being caught up: the wall-clock watermark is far past the window, but the partition's event
    time is not, so the alert is not judged lost before the touchpoints of its window are read."""
    ps = PartitionState(0, policy())
    [alert] = process(ps, STRIKES, watermark=END + 10 * DAY_MS).alerts
    assert rows(ps.expire(NOW, END + 10 * DAY_MS)) == []
    repaired = process(ps, [compensation("K3", 5)], watermark=END + 10 * DAY_MS)
    assert final(repaired) == {alert.alert_id: ("C1", "recovered", 0, at_ms(T0 + days(5)) // 1000)}


def test_a_held_alert_is_watched_from_when_the_hold_releases_it() -> None:
    """An anonymous key's alert waits for its link; never linked, the timer raises it: its outcome too."""
    anon = "~anon:h1"
    ps = PartitionState(0, policy(anonymous_hold=30_000))
    assert process(ps, [complaint(f"K{i}", i, key=anon) for i in range(3)]).alerts == []
    released = ps.process([], NOW, watermark=0)
    assert released.alerts == []
    due = ps.expire(NOW + 31_000, 0)
    [alert] = due.alerts
    assert final(due) == {alert.alert_id: (anon, "pending", 0, None)}
    assert final(after_the_window(ps)) == {alert.alert_id: (anon, "lost", 1, END // 1000)}


def test_contact_without_repair_or_relapse_stays_pending_and_is_decided_so() -> None:
    ps = PartitionState(0, policy())
    [alert] = process(ps, STRIKES).alerts
    process(ps, [login(3)])
    assert final(after_the_window(ps)) == {alert.alert_id: ("C1", "pending", 1, None)}


def test_the_customer_coming_back_only_after_the_window_is_lost() -> None:
    ps = PartitionState(0, policy())
    [alert] = process(ps, STRIKES).alerts
    assert final(process(ps, [login(45)]))[alert.alert_id] == ("C1", "lost", 1, END // 1000)


def test_the_window_follows_the_recovery_days() -> None:
    ps = PartitionState(0, policy(recovery=5 * DAY_MS))
    [alert] = process(ps, STRIKES).alerts
    short_end = at_ms(ALERT_AT) + 5 * DAY_MS
    assert final(at_event_time(ps, short_end)) == {}  # up to the 5-day window's end: still pending
    # A repair after the 5-day window: the customer's own event time passed it, and nothing came inside it.
    late = process(ps, [compensation("K3", 8)])
    assert final(late) == {alert.alert_id: ("C1", "lost", 1, short_end // 1000)}


def test_a_restored_partition_still_decides_its_watched_alerts() -> None:
    ps = PartitionState(0, policy())
    [alert] = process(ps, STRIKES).alerts
    restored = PartitionState(0, policy())
    restored.restore(ps.data.items())
    assert final(after_the_window(restored)) == {alert.alert_id: ("C1", "lost", 1, END // 1000)}
    assert process(restored, STRIKES).alerts == []  # duplicates: no new alert, nothing new to watch


def test_an_alert_raised_under_a_key_that_merges_is_decided_under_the_customer() -> None:
    """Strikes under an anonymous key alert there; the repair came under the customer's own key; once the
    keys merge the customer's state decides the alert, and its row moves to the customer."""
    anon = "~anon:a1"
    ps = PartitionState(0, policy())
    [alert] = process(ps, [complaint(f"K{i}", i, key=anon) for i in range(3)]).alerts
    process(ps, [compensation("K2", 4)])  # under C1, which knows nothing of the alert yet
    moved = ps.process([Item("merge", anon, None, "C1")], NOW, watermark=0)
    merged = ps.process(moved.forward, NOW, watermark=0)
    assert final(merged) == {alert.alert_id: ("C1", "recovered", 0, at_ms(T0 + days(4)) // 1000)}
    assert final(after_the_window(ps)) == {alert.alert_id: ("C1", "recovered", 1, at_ms(T0 + days(4)) // 1000)}


EXTRAS = [compensation("K3", 5), complaint("K9", 12), login(3), login(20), compensation("K8", 25), login(40),
          complaint("K7", 45)]  # fmt: skip


@settings(max_examples=60, deadline=None)
@given(
    chosen=st.lists(st.sampled_from(range(len(EXTRAS))), unique=True),
    seed=st.integers(0, 2**32 - 1),
    duplicates=st.integers(0, 3),
)
def test_the_outcome_is_the_same_in_any_order_batching_and_with_duplicates(
    chosen: list[int], seed: int, duplicates: int
) -> None:
    """The alert once raised, whatever follows arrives in any order, split into any batches, some twice: the
    outcome is the one of the same touchpoints in time order in one batch."""
    rng = random.Random(seed)
    extras = [EXTRAS[i] for i in chosen]
    in_order = PartitionState(0, policy())
    expected = final(process(in_order, STRIKES), process(in_order, sorted(extras, key=lambda r: r.occurred_ms)),
                     after_the_window(in_order))  # fmt: skip
    strikes = rng.sample(STRIKES, len(STRIKES))
    shuffled = [*extras, *rng.choices(extras or strikes, k=duplicates), *rng.choices(strikes, k=duplicates)]
    rng.shuffle(shuffled)
    ps = PartitionState(0, policy())
    outs = [process(ps, strikes[: rng.randint(1, 3)]), process(ps, strikes)]
    while shuffled:
        cut = rng.randint(1, len(shuffled))
        outs.append(process(ps, shuffled[:cut]))
        shuffled = shuffled[cut:]
    outs.append(after_the_window(ps))
    assert final(*outs) == expected
    assert len(expected) == 1


ANON = "~anon:a7"


def _as(key: str, rec: TouchpointRecord) -> TouchpointRecord:
    return rec._replace(key=key, customer_id=None if key.startswith("~") else rec.customer_id)


@settings(max_examples=60, deadline=None)
@given(
    chosen=st.lists(st.sampled_from(range(len(EXTRAS))), unique=True),
    anonymous=st.lists(st.booleans(), min_size=3 + len(EXTRAS), max_size=3 + len(EXTRAS)),
    seed=st.integers(0, 2**32 - 1),
)
def test_the_outcome_is_the_same_when_the_story_is_split_across_keys_that_merge(
    chosen: list[int], anonymous: list[bool], seed: int
) -> None:
    """Strikes and what follows, some under an anonymous key that merges into the customer at any point:
    the outcome (under the customer) is the one of the same story under the customer's key alone."""
    rng = random.Random(seed)
    extras = [EXTRAS[i] for i in chosen]
    alone = PartitionState(0, policy())
    expected = final(process(alone, STRIKES), process(alone, sorted(extras, key=lambda r: r.occurred_ms)),
                     after_the_window(alone))  # fmt: skip
    story = [*STRIKES, *extras]
    keyed = [_as(ANON if anon else "C1", rec) for rec, anon in zip(story, anonymous, strict=False)]
    merge_at = rng.randint(0, len(keyed))
    ps = PartitionState(0, policy())
    outs = [process(ps, keyed[:merge_at])] if merge_at else []
    moved = ps.process([Item("merge", ANON, None, "C1")], NOW, watermark=0)
    outs += [moved, ps.process(moved.forward, NOW, watermark=0)]
    after = [_as("C1", rec) for rec in keyed[merge_at:]]  # routed to the customer once linked
    outs += [process(ps, after), after_the_window(ps)]
    assert sorted(final(*outs).values()) == sorted(expected.values())
