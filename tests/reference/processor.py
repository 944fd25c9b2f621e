"""Reference model of stage 2, the Python stage the native core (core/src/stage.rs) replaced."""

from __future__ import annotations

import heapq
import uuid
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Final

from schemas.records import RISK_LEVELS, ChurnAlert, TouchpointRecord
from schemas.rows import (
    OUTCOMES,
    AlertOutcomeRow,
    CustomerRow,
    ErasureRow,
    IdentityOverrideRow,
    JourneyRow,
    SignalRow,
)
from streams.domain.codec import Item
from streams.domain.customer import Policy
from streams.domain.identity import is_anonymous
from streams.domain.outputs import Output
from streams.domain.playbook import recommend
from tests.reference.codec import Forward, decode_entry, encode_forward, encode_state
from tests.reference.customer import CustomerState, Outcome, RetroSignal, Watch, event_hash, is_decided
from tests.reference.journeys import Journey, channel_names, row_id
from tests.reference.outputs import retirement_row, touchpoint_row
from tests.reference.signals import classify

__all__ = ["ALERT_NAMESPACE", "PartitionState"]

ALERT_NAMESPACE: Final = uuid.UUID("6f1c2d4e-8a7b-4c3d-9e2f-1a2b3c4d5e6f")


class _DueIndex:
    """Keys by the time something of theirs falls due (the earliest only), popped once it is reached."""

    def __init__(self) -> None:
        self._heap: list[tuple[int, str]] = []
        self._at: dict[str, int] = {}

    def offer(self, key: str, deadline: int | None) -> None:
        if deadline is not None and (key not in self._at or deadline < self._at[key]):
            self._at[key] = deadline
            heapq.heappush(self._heap, (deadline, key))

    def remove(self, key: str) -> None:
        self._at.pop(key, None)  # its heap entry is skipped when popped

    def pop_due(self, until: int) -> Iterator[str]:
        """Each key due at or before `until`, taken out of the index (offering keys again while iterating is fine)."""
        while self._heap and self._heap[0][0] <= until:
            deadline, key = heapq.heappop(self._heap)
            if self._at.get(key) == deadline:
                del self._at[key]
                yield key


class PartitionState:
    """The customers of one stitch partition: serialized entries plus a due-journey index."""

    def __init__(self, partition: int, policy: Policy, forward_ttl_ms: int = 3_600_000) -> None:
        self.partition = partition
        self.policy = policy
        self.forward_ttl_ms = forward_ttl_ms
        self.data: dict[str, bytes] = {}
        self.max_event_ms = 0
        self._due = _DueIndex()  # open journeys' timeouts (the watermark)
        self._forwards: dict[str, int] = {}  # key -> created_ms, for expiry
        self._held: dict[str, int] = {}  # anonymous key -> wall ms its held alerts are due
        self._watches = _DueIndex()  # undecided alert windows' ends + 1 (the partition's event time)

    # --- loading (recovery) -------------------------------------------------------------

    def restore(self, entries: Iterable[tuple[str, bytes | None]]) -> None:
        """Rebuild from the changelog (last value per key wins) and re-index due journeys."""
        for key, value in entries:
            if value is None:
                self.data.pop(key, None)
            else:
                self.data[key] = value
        for key, value in self.data.items():
            entry = decode_entry(value)
            if isinstance(entry, Forward):
                self._forwards[key] = entry.created_ms
            else:
                self.max_event_ms = max(self.max_event_ms, entry.latest)
                self._schedule(entry)
                self._hold(entry)

    def _schedule(self, state: CustomerState) -> None:
        """Index the earliest open journey's timeout and the earliest undecided alert window's end."""
        timeouts = self.policy.journeys.timeouts
        self._due.offer(state.key, min(
            (j.last + timeouts[j.jtype] for j in state.journeys.values() if not j.terminal and j.emitted == "open"),
            default=None,
        ))  # fmt: skip
        recovery = self.policy.recovery
        self._watches.offer(state.key, min(
            (w.at + recovery + 1 for w in state.watches if not is_decided(w.reported)), default=None
        ))  # fmt: skip

    # --- processing -------------------------------------------------------------------------

    def process(self, items: Iterable[Item], now_ms: int, watermark: int) -> Output:
        """Apply items in partition order; every state touched is written back once."""
        out = Output()
        touched: dict[str, CustomerState] = {}
        for item in items:
            if item.record is not None:
                out.received_ms.append(item.record.received_ms)
            if item.kind == "forget":
                touched.pop(item.key, None)
                self._forget(item, now_ms, out)
                continue
            entry: CustomerState | Forward | None = touched.get(item.key) or self._load(item.key)
            if isinstance(entry, Forward):
                self._pass_on(item, entry, now_ms, out)
                continue
            if item.kind == "merge":
                if item.target != item.key:
                    if entry is not None:
                        touched.pop(item.key, None)
                        self._move_out(entry, item.target, now_ms, out)
                    self._store_forward(item.key, item.target, now_ms, out)
                continue
            if entry is None:
                entry = CustomerState(item.key)
            if item.key not in touched:
                # One version per batch: every row written for this key below carries it.
                entry.version = max(entry.version + 1, now_ms)
                touched[item.key] = entry
            if item.kind == "tp":
                assert item.record is not None
                self._apply(entry, item.record, out)
            elif item.kind == "state":
                moved = decode_entry(item.blob)
                if isinstance(moved, CustomerState):
                    retro, retired = entry.absorb(moved, self.policy)
                    self._retro_rows(entry.key, retro, out)
                    self._retired_rows(entry, retired, now_ms, out)
        for state in touched.values():
            self._finish(state, now_ms, watermark, out)
        return out

    def _forget(self, item: Item, now_ms: int, out: Output) -> None:
        """Erase a key's state or forward (a changelog tombstone), then acknowledge it in `erasures`.

        Rows this batch produced for the key before the request are still written: `cxj forget` deletes
        from ClickHouse only after the acknowledgement, which the writer stores after every other table.
        """
        existed = self.data.pop(item.key, None) is not None
        self._due.remove(item.key)
        self._watches.remove(item.key)
        self._forwards.pop(item.key, None)
        self._held.pop(item.key, None)
        out.changed[item.key] = None
        out.erased += existed
        request_id, number = item.target, int(item.blob or b"0")
        out.add(
            ErasureRow(
                request_id=request_id,
                stage="state",
                item=number,
                partition=self.partition,
                expected=1,
                erased=int(existed),
                done_at=now_ms // 1000,
            )
        )

    def _pass_on(self, item: Item, forward: Forward, now_ms: int, out: Output) -> None:
        """A key merged away: route its traffic to where its state went."""
        if item.kind == "merge":
            if item.target not in (forward.target, item.key):
                self._store_forward(item.key, item.target, now_ms, out)
            return
        record = item.record._replace(key=forward.target) if item.record is not None else None
        out.forward.append(item._replace(key=forward.target, record=record))
        if item.kind == "state":
            # A state passing through: its journeys' pointers name ids under this key, so they point on.
            moved = decode_entry(item.blob)
            if isinstance(moved, CustomerState):
                version = max(moved.version + 1, now_ms)
                for journey in moved.journeys.values():
                    into = row_id(forward.target, journey.jid)
                    out.add(retirement_row(item.key, journey, into, version, now_ms))

    def _apply(self, state: CustomerState, rec: TouchpointRecord, out: Output) -> None:
        if rec.occurred_ms > self.max_event_ms:
            self.max_event_ms = rec.occurred_ms
        applied = state.apply(rec, classify(self.policy.classifier, rec), event_hash(rec.event_id), self.policy)
        if applied is None:
            out.duplicates += 1
            return
        key = state.key
        out.add(touchpoint_row(rec, key, applied, [s.name for s in applied.signals]))
        for s in applied.signals:
            out.signals[s.name] += 1
            out.add(
                SignalRow(
                    event_id=rec.event_id,
                    customer_key=key,
                    experience_key=applied.experience_key,
                    signal=s.name,
                    polarity=s.polarity,
                    dimension=s.dimension,
                    channel=rec.channel,
                    event_type=rec.event_type,
                    occurred_at=rec.occurred_ms // 1000,
                    journey_id=row_id(key, applied.journey_id) if applied.journey_id else "",
                )
            )
        if applied.opened:
            out.journeys_opened[applied.opened] += 1
        self._retro_rows(key, applied.retro, out)
        self._retired_rows(state, applied.retired, rec.occurred_ms, out)

    def _load(self, key: str) -> CustomerState | Forward | None:
        data = self.data.get(key)
        return decode_entry(data) if data is not None else None

    def _store_forward(self, key: str, target: str, now_ms: int, out: Output) -> None:
        value = encode_forward(target, now_ms)
        self.data[key] = value
        self._forwards[key] = now_ms
        self._due.remove(key)
        self._watches.remove(key)
        self._held.pop(key, None)
        out.changed[key] = value

    def _retro_rows(self, key: str, retro: list[RetroSignal], out: Output) -> None:
        for r in retro:
            out.signals[r.signal.name] += 1
            out.add(
                SignalRow(
                    event_id=r.event_id,
                    customer_key=key,
                    experience_key=r.experience_key,
                    signal=r.signal.name,
                    polarity=r.signal.polarity,
                    dimension=r.signal.dimension,
                    channel=r.channel,
                    event_type="contact_started",
                    occurred_at=r.occurred_ms // 1000,
                    journey_id="",
                )
            )

    def _retired_rows(self, state: CustomerState, retired: list[Journey], now_ms: int, out: Output) -> None:
        # A browse session fused into an earlier one keeps a row with zero touchpoints and a
        # pointer, so `journeys FINAL WHERE merged_into = ''` counts each session once.
        for journey in retired:
            into = next((j.jid for j in state.journeys.values() if j.events >= journey.events), "")
            into_id = row_id(state.key, into) if into else "merged"
            out.add(retirement_row(state.key, journey, into_id, state.version, now_ms))

    def _move_out(self, state: CustomerState, target: str, now_ms: int, out: Output) -> None:
        """Send this key's state to the key it was linked to; leave a zeroed row behind."""
        out.forward.append(Item("state", target, None, state.key, encode_state(state)))
        version = max(state.version + 1, now_ms)
        out.add(
            CustomerRow(
                customer_key=state.key,
                dissatisfied_90d=0,
                satisfied_90d=0,
                experience_score=0.0,
                churn_risk="none",
                last_event_at=state.latest // 1000,
                version=version,
                lifetime_value=0.0,
                experiences=0,
                open_journeys=0,
                merged_into=target,
                updated_at=now_ms // 1000,
            )
        )
        for old in (state.key, *state.aliases):
            out.add(
                IdentityOverrideRow(stitched_key=old, customer_key=target, merged_at=now_ms // 1000, version=version)
            )
        # The journeys follow the state; rows stored under this key's own ids point to their new ids.
        for journey in state.journeys.values():
            out.add(retirement_row(state.key, journey, row_id(target, journey.jid), version, now_ms))
        out.merges += 1

    def _finish(self, state: CustomerState, now_ms: int, watermark: int, out: Output) -> None:
        policy = self.policy
        for journey in state.prune(policy, watermark):
            self._journey_row(state, journey, watermark, now_ms, out)
        lifetime = self._raise_alerts(state, policy.anonymous_hold > 0 and is_anonymous(state.key), now_ms, out)
        self._report_outcomes(state, self._stale_outcomes(state), now_ms, out)
        counters = state.counters(policy)
        open_journeys = 0
        for journey in state.journeys.values():
            open_journeys += self._journey_row(state, journey, watermark, now_ms, out) == "open"
        out.add(
            CustomerRow(
                customer_key=state.key,
                dissatisfied_90d=counters.dissatisfied,
                satisfied_90d=counters.satisfied,
                experience_score=counters.score,
                churn_risk=counters.level,
                last_event_at=state.latest // 1000,
                version=state.version,
                lifetime_value=lifetime,
                experiences=len(state.exps),
                open_journeys=open_journeys,
                merged_into="",
                updated_at=now_ms // 1000,
            )
        )
        self._schedule(state)
        value = encode_state(state)
        self.data[state.key] = value
        out.changed[state.key] = value

    def _stale_outcomes(self, state: CustomerState) -> list[tuple[Watch, Outcome]]:
        """Watched alerts whose outcome differs from the one last written, as of the customer's or the
        partition's newest event time."""
        now = max(state.latest, self.max_event_ms)
        outcomes = [(w, state.outcome(w.at, self.policy.recovery, now)) for w in state.watches]
        return [(w, o) for w, o in outcomes if (o.code, o.at) != (w.reported, w.reported_at)]

    def _report_outcomes(self, state: CustomerState, stale: list[tuple[Watch, Outcome]], now_ms: int,
                         out: Output) -> None:  # fmt: skip
        for w, o in stale:
            if o.decided and (not is_decided(w.reported) or (w.reported - 1) // 2 != o.outcome):
                out.outcomes_decided[OUTCOMES[o.outcome]] += 1
            w.reported, w.reported_at = o.code, o.at
            out.add(
                AlertOutcomeRow(
                    alert_id=w.alert_id,
                    customer_key=state.key,
                    triggered_at=w.at // 1000,
                    outcome=OUTCOMES[o.outcome],
                    decided=int(o.decided),
                    outcome_at=o.at // 1000 if o.at else None,
                    version=state.version,
                    updated_at=now_ms // 1000,
                )
            )

    def _journey_row(self, state: CustomerState, journey: Journey, watermark: int, now_ms: int, out: Output) -> str:
        """Write the journey when its status or content changed; returns its status."""
        status = journey.status(watermark, self.policy.journeys)
        if journey.emitted == status:
            return status
        ended_at = journey.ended_at(status)
        if status != "open" and journey.emitted in ("", "open"):
            out.journeys_closed[(journey.jtype, status)] += 1
            out.journey_seconds.append((journey.jtype, ((ended_at or journey.last) - journey.started) / 1000))
        journey.emitted = status
        out.add(
            JourneyRow(
                journey_id=row_id(state.key, journey.jid),
                customer_key=state.key,
                journey_type=journey.jtype,
                status=status,
                started_at=journey.started // 1000,
                ended_at=None if ended_at is None else ended_at // 1000,
                last_event_at=journey.last // 1000,
                touchpoints=len(journey.events),
                channels=channel_names(journey.channels),
                dissatisfying=int(journey.dissatisfying),
                merged_into="",
                version=state.version,
                updated_at=now_ms // 1000,
            )
        )
        return status

    def _alert(
        self,
        state: CustomerState,
        instant: int,
        before: int,
        keys: list[str],
        mask: int,
        lifetime: float,
        now_ms: int,
    ) -> ChurnAlert:
        classifier = self.policy.classifier
        names = sorted(classifier.names(mask))
        dimensions = sorted({classifier.by_name[n].dimension for n in names})
        return ChurnAlert(
            alert_id=str(uuid.uuid5(ALERT_NAMESPACE, f"{state.key}|{instant}")),
            customer_key=state.key,
            level="high",
            previous_level=RISK_LEVELS[before],
            dissatisfied_90d=len(keys),
            experience_keys=keys,
            signals=names,
            dimensions=dimensions,
            triggered_at=datetime.fromtimestamp(instant / 1000, UTC),
            lifetime_value=lifetime,
            emitted_at=datetime.fromtimestamp(now_ms / 1000, UTC),
            actions=recommend(self.policy.playbook, classifier.rules, names, dimensions),
        )

    @property
    def held(self) -> int:
        """Anonymous keys whose alerts wait for identity (CXJ_ANONYMOUS_ALERT_HOLD_SECONDS)."""
        return len(self._held)

    def _raise_alerts(self, state: CustomerState, hold: bool, now_ms: int, out: Output) -> float:
        """Alert the state's episodes not alerted yet (or hold them, for an anonymous key); its lifetime value."""
        lifetime = state.lifetime_value()
        for instant, before, keys, mask in state.new_crossings(self.policy, hold):
            alert = self._alert(state, instant, before, keys, mask, lifetime, now_ms)
            state.watches.append(Watch(alert.alert_id, instant))
            out.alerts.append(alert)
        if state.held and not state.held_at:
            state.held_at = now_ms
        self._hold(state)
        return lifetime

    def _hold(self, state: CustomerState) -> None:
        if state.held:
            self._held[state.key] = state.held_at + self.policy.anonymous_hold
        else:
            self._held.pop(state.key, None)

    # --- timers ---------------------------------------------------------------------------------

    def expire(self, now_ms: int, watermark: int) -> Output:
        """Close journeys whose idle timeout passed, alert held episodes now due, drop old forwards."""
        out = Output()
        for key in self._due.pop_due(watermark):
            entry = self._load(key)
            if not isinstance(entry, CustomerState):
                continue
            changed = False
            for journey in entry.journeys.values():
                if journey.emitted != journey.status(watermark, self.policy.journeys):
                    entry.version = max(entry.version + 1, now_ms)
                    self._journey_row(entry, journey, watermark, now_ms, out)
                    changed = True
            self._schedule(entry)
            if changed:
                value = encode_state(entry)
                self.data[key] = value
                out.changed[key] = value
        for key in self._watches.pop_due(self.max_event_ms):
            entry = self._load(key)
            if not isinstance(entry, CustomerState):
                continue
            stale = self._stale_outcomes(entry)
            if stale:
                entry.version = max(entry.version + 1, now_ms)
                self._report_outcomes(entry, stale, now_ms, out)
                value = encode_state(entry)
                self.data[key] = value
                out.changed[key] = value
            self._schedule(entry)
        for key, due_at in list(self._held.items()):
            # An anonymous key not linked within the hold: its episodes are alerted under it.
            if due_at > now_ms:
                continue
            del self._held[key]
            entry = self._load(key)
            if not isinstance(entry, CustomerState):
                continue
            entry.version = max(entry.version + 1, now_ms)
            self._raise_alerts(entry, False, now_ms, out)
            self._report_outcomes(entry, self._stale_outcomes(entry), now_ms, out)
            self._schedule(entry)
            value = encode_state(entry)
            self.data[key] = value
            out.changed[key] = value
        for key, created in list(self._forwards.items()):
            if created + self.forward_ttl_ms < now_ms:
                del self._forwards[key]
                self.data.pop(key, None)
                out.changed[key] = None
        return out
