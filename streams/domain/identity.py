"""The identity graph: routing keys, link claims, and the arbiter's merge decisions."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Final, NamedTuple

from schemas.records import LinkClaim, TouchpointRecord

__all__ = [
    "ClaimOutcome",
    "Conflict",
    "Erasure",
    "IdentityGraph",
    "LinkChange",
    "claim_for",
    "is_anonymous",
    "route_key",
    "self_key",
]

ANON_PREFIX: Final = "~"
# Priority of identifier types when an anonymous component needs one key (Contract 2 order).
_RANK: Final = {"anon": 0, "device": 1, "phone": 2, "email": 3, "wechat": 4}

Lookup = Callable[[str], str | None]


def self_key(identifier: str) -> str:
    """The key of an identifier nobody linked yet: `~anon:<id>`, `~phone:<hash>` …"""
    return ANON_PREFIX + identifier


def is_anonymous(key: str) -> bool:
    return key.startswith(ANON_PREFIX)


def _rank(key: str) -> tuple[int, str]:
    kind = key[1:].split(":", 1)[0]
    return _RANK.get(kind, len(_RANK)), key


def route_key(rec: TouchpointRecord, lookup: Lookup) -> str:
    """The customer key a touchpoint is stitched to at ingest.

    The customer_id when given; else what its first linked identifier resolves to; else the
    key of its first identifier.
    """
    if rec.customer_id:
        return rec.customer_id
    for identifier in rec.identifiers:
        key = lookup(identifier)
        if key is not None:
            return key
    return self_key(rec.identifiers[0])


def claim_for(rec: TouchpointRecord, key: str, lookup: Lookup) -> LinkClaim | None:
    """A link claim when the touchpoint joins identifiers not yet known to be together."""
    if len(rec.identifiers) + (1 if rec.customer_id else 0) < 2:
        return None
    if all((lookup(i) or self_key(i)) == key for i in rec.identifiers):
        return None
    return LinkClaim(rec.customer_id, tuple(rec.identifiers), rec.occurred_ms, rec.event_id)


class LinkChange(NamedTuple):
    """An identifier now resolves to `customer_key` (was `previous_key`)."""

    identifier: str
    customer_key: str
    previous_key: str
    linked_ms: int
    event_id: str


class Conflict(NamedTuple):
    """A claim that would have glued an identifier to a second customer, or over the limit."""

    identifier: str
    existing_key: str
    claimed_key: str
    reason: str  # "customer_conflict" | "identifier_limit"
    event_id: str
    occurred_ms: int


@dataclass(slots=True)
class ClaimOutcome:
    links: list[LinkChange] = field(default_factory=list)
    merges: list[tuple[str, str]] = field(default_factory=list)  # (old key, new key)
    conflicts: list[Conflict] = field(default_factory=list)


class Erasure(NamedTuple):
    """What forgetting a customer removed from the graph."""

    key: str  # the customer's current key (an anonymous subject resolves to its component)
    identifiers: tuple[str, ...]  # every identifier that resolved to it, now unlinked
    keys: tuple[str, ...]  # `key` and every key merged into it: the self keys of its identifiers


@dataclass(slots=True)
class IdentityGraph:
    """identifier -> key, and key -> its identifiers; the arbiter's authoritative copy.

    Two customer_ids never merge; a component holds at most `max_identifiers`; an anonymous
    component's key is its smallest member key by type priority, so the final keys do not
    depend on the order claims arrive in (conflicts and the limit are first-come).
    """

    max_identifiers: int = 50
    mapping: dict[str, str] = field(default_factory=dict)
    members: dict[str, set[str]] = field(default_factory=dict)

    def key_of(self, identifier: str) -> str:
        return self.mapping.get(identifier) or self_key(identifier)

    def load(self, changes: Iterable[tuple[str, str | None]]) -> None:
        """Rebuild from the links topic: (identifier, key) in log order, last one wins; None = forgotten."""
        for identifier, key in changes:
            if key is None:
                self._unset(identifier)
            else:
                self._set(identifier, key)

    def _unset(self, identifier: str) -> None:
        old = self.mapping.pop(identifier, None)
        if old is not None:
            group = self.members.get(old)
            if group is not None:
                group.discard(identifier)
                if not group:
                    del self.members[old]

    def _set(self, identifier: str, key: str) -> None:
        if self.mapping.get(identifier, key) != key:
            self._unset(identifier)
        self.mapping[identifier] = key
        self.members.setdefault(key, set()).add(identifier)

    def _size(self, key: str) -> int:
        group = self.members.get(key)
        return len(group) if group is not None else (1 if is_anonymous(key) else 0)

    def forget(self, subject: str) -> Erasure:
        """Unlink every identifier of `subject`'s component; a later touchpoint starts a new customer.

        `subject` is a customer key, or an anonymous key that may since have merged into one (then the
        whole customer is forgotten, as one person).
        """
        key = subject
        if is_anonymous(subject):
            key = self.mapping.get(subject[len(ANON_PREFIX) :], subject)
        identifiers = tuple(sorted(self.members.pop(key, set())))
        for identifier in identifiers:
            del self.mapping[identifier]
        keys = {key, *(self_key(i) for i in identifiers)}
        return Erasure(key, identifiers, tuple(sorted(keys)))

    def apply(self, claim: LinkClaim) -> ClaimOutcome:
        out = ClaimOutcome()
        current = {i: self.key_of(i) for i in claim.identifiers}
        if claim.customer_id:
            target = claim.customer_id
        else:
            customers = [k for k in dict.fromkeys(current.values()) if not is_anonymous(k)]
            target = customers[0] if customers else min(current.values(), key=_rank)
        if is_anonymous(target) and target not in self.members:
            # A lone identifier becomes a component under its own key.
            own = target[len(ANON_PREFIX) :]
            self._set(own, target)
            out.links.append(LinkChange(own, target, target, claim.occurred_ms, claim.event_id))
        for identifier, key in current.items():
            key = self.key_of(identifier)  # earlier merges in this claim may have moved it
            if key == target:
                continue
            if not is_anonymous(key):
                out.conflicts.append(
                    Conflict(
                        identifier,
                        key,
                        target,
                        "customer_conflict",
                        claim.event_id,
                        claim.occurred_ms,
                    )
                )
                continue
            group = sorted(self.members.get(key) or {identifier})
            if self._size(target) + len(group) > self.max_identifiers:
                out.conflicts.append(
                    Conflict(
                        identifier,
                        key,
                        target,
                        "identifier_limit",
                        claim.event_id,
                        claim.occurred_ms,
                    )
                )
                continue
            for member in group:
                self._set(member, target)
                out.links.append(LinkChange(member, target, key, claim.occurred_ms, claim.event_id))
            out.merges.append((key, target))
        return out
