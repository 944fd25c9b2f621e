"""Reference model of journeys (the Python implementation the native core replaced: core/src/journeys.rs)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final

from schemas.records import TouchpointRecord
from schemas.touchpoint import CHANNELS
from streams.domain.journeys import JOURNEY_TYPES, JourneyPolicy

__all__ = [
    "CHANNEL_BITS",
    "JOURNEY_TYPES",
    "Journey",
    "JourneyPolicy",
    "anchor",
    "assign",
    "channel_names",
    "merge_journeys",
    "row_id",
]

STATUSES: Final = ("open", "completed", "abandoned")
CHANNEL_BITS: Final = {name: 1 << i for i, name in enumerate(CHANNELS)}
_TERMINAL: Final = frozenset({"delivered", "case_resolved", "order_cancelled"})


@dataclass(slots=True)
class Journey:
    """One journey of one customer; `events` holds 64-bit hashes of its event ids."""

    jid: str
    jtype: str
    started: int
    last: int
    terminal: int = 0  # time of the first terminal event, 0 while none
    channels: int = 0
    dissatisfying: bool = False
    events: set[int] = field(default_factory=set)
    emitted: str = ""  # the status last written to ClickHouse ("" = never, or must re-send)

    def status(self, watermark: int, policy: JourneyPolicy) -> str:
        if self.terminal:
            return "completed"
        if self.last + policy.timeouts[self.jtype] <= watermark:
            return "abandoned"
        return "open"

    def ended_at(self, status: str) -> int | None:
        if status == "completed":
            return self.terminal
        if status == "abandoned":
            return self.last
        return None

    def absorb(self, other: Journey) -> None:
        """Join of two views of the same journey: order of arrival does not matter."""
        self.started = min(self.started, other.started)
        self.last = max(self.last, other.last)
        if other.terminal and (not self.terminal or other.terminal < self.terminal):
            self.terminal = other.terminal
        self.channels |= other.channels
        self.dissatisfying |= other.dissatisfying
        self.events |= other.events
        self.emitted = ""


def anchor(rec: TouchpointRecord) -> tuple[str, str] | None:
    """(type, journey_id) of an anchored journey, or None for browse touchpoints."""
    if rec.case_id:
        return "service", f"service:case:{rec.case_id}"
    if rec.contact_id:
        return "service", f"service:contact:{rec.contact_id}"
    if rec.order_id:
        return "purchase", f"purchase:{rec.order_id}"
    return None


def _is_terminal(rec: TouchpointRecord) -> bool:
    return rec.event_type in _TERMINAL or (rec.event_type == "contact_ended" and rec.resolved is True)


def assign(journeys: dict[str, Journey], rec: TouchpointRecord, policy: JourneyPolicy) -> tuple[Journey, list[Journey]]:
    """The journey this touchpoint belongs to (created if new), and browse journeys it retired.

    A browse touchpoint joins every session it falls within `browse_gap` of; when it bridges
    two sessions they become one, the earliest surviving and the others retired. A session is
    named after its earliest touchpoint (time, then event id), so both the split by 30 minutes
    of inactivity and the journey ids are the same whatever order the touchpoints arrive in.
    """
    t = rec.occurred_ms
    found = anchor(rec)
    retired: list[Journey] = []
    if found is not None:
        jtype, jid = found
        journey = journeys.get(jid)
        if journey is None:
            journey = journeys[jid] = Journey(jid, jtype, t, t)
    else:
        gap = policy.browse_gap
        near = [j for j in journeys.values() if j.jtype == "browse" and j.started - gap < t < j.last + gap]
        if not near:
            jid = f"browse:{rec.event_id}"
            journey = journeys[jid] = Journey(jid, "browse", t, t)
        else:
            near.sort(key=lambda j: (j.started, j.jid))
            journey = near[0]
            for other in near[1:]:
                journey.absorb(other)
                del journeys[other.jid]
                retired.append(other)
            if (t, rec.event_id) < (journey.started, journey.jid.removeprefix("browse:")):
                # A session is named after its earliest touchpoint, whatever arrived first.
                renamed = Journey(f"browse:{rec.event_id}", "browse", t, t)
                renamed.absorb(journey)
                del journeys[journey.jid]
                retired.append(journey)
                journey = journeys[renamed.jid] = renamed
    journey.started = min(journey.started, t)
    journey.last = max(journey.last, t)
    journey.channels |= CHANNEL_BITS.get(rec.channel, 0)
    if _is_terminal(rec) and (not journey.terminal or t < journey.terminal):
        journey.terminal = t
    journey.emitted = ""
    return journey, retired


def merge_journeys(mine: dict[str, Journey], theirs: Iterable[Journey], policy: JourneyPolicy) -> list[Journey]:
    """Take over another key's journeys; overlapping browse sessions fuse. Returns retired ones."""
    for journey in theirs:
        existing = mine.get(journey.jid)
        if existing is None:
            journey.emitted = ""
            mine[journey.jid] = journey
        else:
            existing.absorb(journey)
    browse = sorted((j for j in mine.values() if j.jtype == "browse"), key=lambda j: (j.started, j.jid))
    retired = []
    current: Journey | None = None
    for journey in browse:
        if current is not None and journey.started - current.last < policy.browse_gap:
            current.absorb(journey)
            del mine[journey.jid]
            retired.append(journey)
        else:
            current = journey
    return retired


def row_id(key: str, jid: str) -> str:
    """The `journey_id` a key's journey is stored under: `<anchor>@<customer_key>`.

    Journeys are unique per customer: an order id may reach two keys (an anonymous key touching
    another person's order, a gift, a shared phone), and neither may overwrite the other's row. When
    a key merges, its rows are retired with a pointer (`merged_into`) to the id under the customer.
    """
    return f"{jid}@{key}"


def channel_names(mask: int) -> list[str]:
    """Channel names of a bit mask, in contract order."""
    return [name for name, bit in CHANNEL_BITS.items() if mask & bit]
