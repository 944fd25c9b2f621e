"""Reference model of one customer's state (the Python implementation the native core replaced: core/src/customer.rs).

Experiences, journeys, orders, recent contacts, alerts already raised.

Every part is a join-semilattice (sets, minimum first times, maximum latest time), so applying
the same touchpoints in any order, twice, or split across keys that later merge, ends in the
same state: that is what makes stitching order-independent and replays after a crash harmless.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from hashlib import blake2b
from typing import NamedTuple

from schemas.records import TouchpointRecord
from streams.domain.customer import DAY_MS, Policy
from streams.domain.signals import Signal
from tests.reference.journeys import Journey, assign, merge_journeys
from tests.reference.risk import attribute_alerts, churn_level, episodes, experience_score, in_window
from tests.reference.signals import experience_key

__all__ = [
    "Applied",
    "Contact",
    "Counters",
    "CustomerState",
    "Experience",
    "Policy",
    "RetroSignal",
    "event_hash",
]


def event_hash(event_id: str) -> int:
    """Stable 64-bit hash of an event id (Python's hash() changes between processes)."""
    return int.from_bytes(blake2b(event_id.encode(), digest_size=8).digest(), "little")


@dataclass(slots=True)
class Experience:
    """One episode: when it first went wrong / right, which signals it carries."""

    first_neg: int = 0
    first_pos: int = 0
    mask: int = 0
    last: int = 0

    def add(self, signal: Signal, when: int) -> None:
        self.mask |= 1 << signal.bit
        if signal.polarity < 0:
            if not self.first_neg or when < self.first_neg:
                self.first_neg = when
        elif not self.first_pos or when < self.first_pos:
            self.first_pos = when
        if when > self.last:
            self.last = when

    def absorb(self, other: Experience) -> None:
        if other.first_neg and (not self.first_neg or other.first_neg < self.first_neg):
            self.first_neg = other.first_neg
        if other.first_pos and (not self.first_pos or other.first_pos < self.first_pos):
            self.first_pos = other.first_pos
        self.mask |= other.mask
        self.last = max(self.last, other.last)


class RetroSignal(NamedTuple):
    """A signal found later for an earlier touchpoint (a repeat contact seen out of order)."""

    event_id: str
    experience_key: str
    signal: Signal
    channel: str
    occurred_ms: int


class Applied(NamedTuple):
    """What applying one touchpoint did, for the rows the agent writes."""

    experience_key: str
    journey_id: str
    signals: list[Signal]
    retro: list[RetroSignal]
    retired: list[Journey]
    opened: str  # journey type when this touchpoint opened a new journey, else ""


class Counters(NamedTuple):
    """The customer_experience figures at the customer's latest event time."""

    dissatisfied: int
    satisfied: int
    score: float
    level: str


@dataclass(slots=True)
class Contact:
    """A recent contact_started about a case or order, kept to spot repeat contacts."""

    anchor: str
    at: int
    ref: str  # contact_id, else event_id
    experience_key: str
    event_id: str
    channel: str
    journey_id: str
    flagged: bool = False

    @property
    def identity(self) -> tuple[str, int, str]:
        return self.anchor, self.at, self.ref


@dataclass(slots=True)
class Watch:
    """An alert whose outcome is watched (issue 17): its id, instant, and the outcome code and time last written."""

    alert_id: str
    at: int
    reported: int = 0
    reported_at: int = 0


class Outcome(NamedTuple):
    outcome: int  # index into schemas.rows.OUTCOMES
    decided: bool
    at: int  # the event time behind it; 0 when pending

    @property
    def code(self) -> int:
        return 1 + self.outcome * 2 + int(self.decided)


def is_decided(code: int) -> bool:
    return code != 0 and (code - 1) % 2 == 1


@dataclass(slots=True)
class CustomerState:
    """Everything the pipeline keeps about one customer key."""

    key: str
    version: int = 0
    latest: int = 0
    # The latest first-negative time of a pruned experience (0: none): crossings whose window reaches
    # back to it are not judged, and their alert records are dropped with them.
    horizon: int = 0
    exps: dict[str, Experience] = field(default_factory=dict)
    journeys: dict[str, Journey] = field(default_factory=dict)
    # order_id -> (time, amount) of its latest order_placed: the latest one wins in any order
    orders: dict[str, tuple[int, float]] = field(default_factory=dict)
    contacts: list[Contact] = field(default_factory=list)
    alerted: list[int] = field(default_factory=list)
    aliases: list[str] = field(default_factory=list)
    # Episodes of an anonymous key waiting for identity before they are alerted, since `held_at` (wall ms).
    held: list[int] = field(default_factory=list)
    held_at: int = 0
    watches: list[Watch] = field(default_factory=list)

    # --- applying touchpoints -------------------------------------------------------------

    def seen(self, ehash: int) -> bool:
        return any(ehash in j.events for j in self.journeys.values())

    def apply(self, rec: TouchpointRecord, hits: list[Signal], ehash: int, policy: Policy) -> Applied | None:
        """Apply one touchpoint; None when its event id was already applied (a duplicate)."""
        if self.seen(ehash):
            return None
        t = rec.occurred_ms
        if t > self.latest:
            self.latest = t
        ekey = experience_key(rec)
        exp = self.exps.get(ekey)
        if exp is None:
            exp = self.exps[ekey] = Experience(last=t)
        for signal in hits:
            exp.add(signal, t)
        if t > exp.last:
            exp.last = t
        if rec.event_type == "order_placed" and rec.order_id and rec.amount is not None:
            placed = (t, float(rec.amount))
            self.orders[rec.order_id] = max(placed, self.orders.get(rec.order_id, placed))
        journey_id = opened = ""
        retired: list[Journey] = []
        journey: Journey | None = None
        rc = policy.classifier.repeat_contact
        if t >= self.latest - policy.journeys.horizon(_journey_type(rec)):
            journey, retired = assign(self.journeys, rec, policy.journeys)
            if not journey.events:
                opened = journey.jtype
            journey.events.add(ehash)
            journey_id = journey.jid
        retro: list[RetroSignal] = []
        if rc is not None and rec.event_type == policy.classifier.rules.repeat_contact.event_type:  # type: ignore[union-attr]
            anchor_id = f"case:{rec.case_id}" if rec.case_id else f"order:{rec.order_id}" if rec.order_id else ""
            if anchor_id:
                self.contacts.append(
                    Contact(
                        anchor_id,
                        t,
                        rec.contact_id or rec.event_id,
                        ekey,
                        rec.event_id,
                        rec.channel,
                        journey_id,
                    )
                )
                for found in self._flag_repeats(anchor_id, rc, policy):
                    if found.event_id == rec.event_id:
                        hits = [*hits, rc]
                    else:
                        retro.append(found)
        if journey is not None and any(s.polarity < 0 for s in hits):
            journey.dissatisfying = True
        return Applied(ekey, journey_id, hits, retro, retired, opened)

    def _flag_repeats(self, anchor_id: str, rc: Signal, policy: Policy) -> list[RetroSignal]:
        """Mark contacts about `anchor_id` that had another contact in the days before them."""
        within = policy.classifier.rules.repeat_contact.within_days * DAY_MS  # type: ignore[union-attr]
        group = [c for c in self.contacts if c.anchor == anchor_id]
        flagged = []
        for c in group:
            if c.flagged:
                continue
            if any(o.ref != c.ref and c.at - within <= o.at < c.at for o in group):
                c.flagged = True
                exp = self.exps.get(c.experience_key)
                if exp is None:
                    exp = self.exps[c.experience_key] = Experience(last=c.at)
                exp.add(rc, c.at)
                journey = self.journeys.get(c.journey_id)
                if journey is not None:
                    journey.dissatisfying = True
                    journey.emitted = ""
                flagged.append(RetroSignal(c.event_id, c.experience_key, rc, c.channel, c.at))
        return flagged

    # --- merging another key into this one ------------------------------------------------

    def absorb(self, other: CustomerState, policy: Policy) -> tuple[list[RetroSignal], list[Journey]]:
        """Take over everything known under another key (an anonymous key linked to us)."""
        self.latest = max(self.latest, other.latest)
        self.horizon = max(self.horizon, other.horizon)
        self.version = max(self.version, other.version)
        for key, exp in other.exps.items():
            mine = self.exps.get(key)
            if mine is None:
                self.exps[key] = exp
            else:
                mine.absorb(exp)
        retired = merge_journeys(self.journeys, other.journeys.values(), policy.journeys)
        for order_id, placed in other.orders.items():
            self.orders[order_id] = max(placed, self.orders.get(order_id, placed))
        known = {c.identity for c in self.contacts}
        anchors = set()
        for c in other.contacts:
            if c.identity not in known:
                self.contacts.append(c)
                anchors.add(c.anchor)
        retro: list[RetroSignal] = []
        rc = policy.classifier.repeat_contact
        if rc is not None:
            for anchor_id in sorted(anchors):
                retro.extend(self._flag_repeats(anchor_id, rc, policy))
        self.alerted = sorted(set(self.alerted) | set(other.alerted))
        # `held` is rebuilt by new_crossings, which always follows; until then it keeps the strikes of both
        # keys' held crossings from pruning. The earlier wait is kept.
        self.held = sorted(set(self.held) | set(other.held))
        self.held_at = min((t for t in (self.held_at, other.held_at) if t), default=0)
        for w in other.watches:  # watched here now: written again under this key, the decision not counted twice
            mine = next((m for m in self.watches if m.alert_id == w.alert_id), None)
            if mine is None:
                self.watches.append(Watch(w.alert_id, w.at, w.reported, -1))
            else:
                mine.reported_at = -1
        self.aliases = sorted({*self.aliases, *other.aliases, other.key} - {self.key})
        return retro, retired

    # --- reading ----------------------------------------------------------------------------

    def counters(self, policy: Policy) -> Counters:
        t, window = self.latest, policy.window
        dissatisfied = satisfied = 0
        contributions = []
        signals = policy.classifier.signals
        for exp in self.exps.values():
            if exp.first_neg:
                if in_window(exp.first_neg, t, window):
                    dissatisfied += 1
            elif exp.first_pos and in_window(exp.first_pos, t, window):
                satisfied += 1
            mask = exp.mask
            while mask:
                low = mask & -mask
                signal = signals[low.bit_length() - 1]
                contributions.append((exp.first_neg if signal.polarity < 0 else exp.first_pos, signal.weight))
                mask ^= low
        score = experience_score(contributions, t, window, policy.half_life)
        return Counters(dissatisfied, satisfied, score, churn_level(dissatisfied))

    def lifetime_value(self) -> float:
        return round(sum(amount for _, amount in self.orders.values()), 2)

    def new_crossings(self, policy: Policy, hold: bool = False) -> list[tuple[int, int, list[str], int]]:
        """Episodes into high risk to alert now, recorded as alerted.

        Each is (instant, count just before, experience keys in the window, negative mask). An episode
        is alerted once: when later facts (a late event, a merge) move its start, the alert already
        raised stands for it (attribute_alerts) and its record moves to the new start. With `hold`
        (an anonymous key), episodes not alerted yet wait in `held` instead: a merge brings them to the
        customer, who alerts them unless it alerted the same episode itself.
        """
        negatives = {k: e for k, e in self.exps.items() if e.first_neg}
        times = sorted(e.first_neg for e in negatives.values())
        window = policy.window
        spans = episodes(times, window, self.horizon)
        owner = attribute_alerts(self.alerted, spans)
        covered = set(owner.values())
        for a, i in owner.items():  # the episode's start moved: its alert's outcome is judged from there
            for w in self.watches:
                if w.at == a and a != spans[i][0]:
                    w.at, w.reported_at = spans[i][0], -1
        record = {a for a in self.alerted if a not in owner}  # episodes no longer judged keep theirs
        found = []
        held = []
        for i, (instant, before, _) in enumerate(spans):
            if i in covered:
                record.add(instant)
            elif hold:
                held.append(instant)
            else:
                record.add(instant)
                keys = sorted(k for k, e in negatives.items() if in_window(e.first_neg, instant, window))
                mask = 0
                for k in keys:
                    mask |= negatives[k].mask & policy.classifier.negative_mask
                found.append((instant, before, keys, mask))
        self.alerted = sorted(record)
        self.held = held
        if not held:
            self.held_at = 0
        return found

    # --- forgetting what can no longer matter ---------------------------------------------------

    def outcome(self, at: int, recovery: int, now: int) -> Outcome:
        """The outcome of the alert at `at` as of event time `now` (see the core's CustomerState::outcome)."""
        end = at + recovery

        def inside(t: int) -> bool:
            return t != 0 and at < t <= end

        relapse = [e.first_neg for e in self.exps.values() if inside(e.first_neg)]
        if relapse:
            return Outcome(2, True, min(relapse))
        passed = now > end
        repair = [e.first_pos for e in self.exps.values() if inside(e.first_pos)]
        if repair:
            return Outcome(1, passed, min(repair))
        if not passed:
            return Outcome(0, False, 0)
        seen = any(inside(e.first_pos) or inside(e.last) for e in self.exps.values()) or any(
            inside(j.started) or inside(j.last) for j in self.journeys.values()
        )
        return Outcome(0, True, 0) if seen else Outcome(3, True, end)

    def prune(self, policy: Policy, watermark: int) -> list[Journey]:
        """Drop what lies beyond the window plus allowed lateness; returns journeys dropped."""
        cut = self.latest - policy.window - policy.lateness
        # A held crossing was judged and only waits (wall clock) for a link: every strike its window
        # reaches stays until it is alerted, so that pruning (event time) never judges it away.
        keep = min(self.held) - policy.window if self.held else None
        if any(e.last < cut for e in self.exps.values()):
            kept = {}
            for k, e in self.exps.items():
                if e.last >= cut or (keep is not None and e.first_neg and e.first_neg >= keep):
                    kept[k] = e
                elif e.first_neg > self.horizon:
                    self.horizon = e.first_neg
            self.exps = kept
        if self.horizon and self.alerted:
            # An alert stays remembered as long as its crossing can still be judged (see crossings()).
            self.alerted = [a for a in self.alerted if a - policy.window > self.horizon]
        if self.watches:
            wcut = self.latest - policy.recovery - policy.lateness
            self.watches = [w for w in self.watches if w.at >= wcut or not is_decided(w.reported)]
        rc = policy.classifier.rules.repeat_contact
        if rc is not None and self.contacts:
            ccut = self.latest - rc.within_days * DAY_MS - policy.lateness
            self.contacts = [c for c in self.contacts if c.at >= ccut]
        dropped = []
        for jid, j in list(self.journeys.items()):
            if (
                j.last < self.latest - policy.journeys.horizon(j.jtype)
                and j.status(watermark, policy.journeys) != "open"
            ):
                dropped.append(self.journeys.pop(jid))
        return dropped


def _journey_type(rec: TouchpointRecord) -> str:
    if rec.case_id or rec.contact_id:
        return "service"
    return "purchase" if rec.order_id else "browse"
