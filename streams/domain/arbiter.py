"""The identity arbiter's claim handling: what a link claim changes, as records, rows and merge requests.

The arbiter agent, and the in-memory cluster of the property tests, both hand claims to `arbitrate`
(the graph itself is streams/domain/identity.py); the agent then publishes and stores what it returns.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import NamedTuple

import orjson

from schemas.records import LinkClaim
from schemas.rows import IdentityConflictRow, IdentityLinkRow
from streams.domain.codec import Item
from streams.domain.identity import IdentityGraph
from streams.domain.routing import partition_for

__all__ = ["Arbitration", "Link", "arbitrate"]


class Link(NamedTuple):
    """One mapping change for topic `cx.identity.links`, whose records are `schemas.records.IdentityLink`."""

    identifier: str
    customer_key: str
    previous_key: str
    linked_ms: int
    event_id: str
    version: int

    def to_json(self) -> bytes:
        """The record's value: exactly `IdentityLink(...).model_dump_json()` (tests/unit/streams/test_arbiter.py),
        without validating what the graph made (pydantic took half the arbiter's time per link)."""
        linked_at = datetime.fromtimestamp(self.linked_ms / 1000, UTC)
        return orjson.dumps(
            {
                "identifier": self.identifier,
                "customer_key": self.customer_key,
                "previous_key": self.previous_key,
                "linked_at": linked_at,
                "event_id": self.event_id,
                "version": self.version,
            },
            option=orjson.OPT_UTC_Z,
        )


@dataclass(slots=True)
class Arbitration:
    """Links for the links topic and table, conflicts for their table, merges for the stitch partitions."""

    links: list[Link] = field(default_factory=list)
    link_rows: list[IdentityLinkRow] = field(default_factory=list)
    conflict_rows: list[IdentityConflictRow] = field(default_factory=list)
    merges: dict[int, list[Item]] = field(default_factory=dict)
    conflicts: Counter[str] = field(default_factory=Counter)  # by reason


def arbitrate(
    graph: IdentityGraph, claims: Iterable[LinkClaim], now_ms: int, partitions: int, out: Arbitration | None = None
) -> Arbitration:
    """Apply claims in order; link versions grow within the call (`now_ms * 1000 + n`)."""
    out = out if out is not None else Arbitration()
    for claim in claims:
        outcome = graph.apply(claim)
        for c in outcome.links:
            version = now_ms * 1000 + len(out.links)
            out.links.append(Link(c.identifier, c.customer_key, c.previous_key, c.linked_ms, c.event_id, version))
            out.link_rows.append(
                IdentityLinkRow(
                    identifier=c.identifier,
                    identifier_type=c.identifier.split(":", 1)[0],
                    customer_key=c.customer_key,
                    previous_key=c.previous_key,
                    linked_at=c.linked_ms // 1000,
                    event_id=c.event_id,
                    version=version,
                )
            )
        for old, new in outcome.merges:
            out.merges.setdefault(partition_for(old, partitions), []).append(Item("merge", old, None, new))
        for k in outcome.conflicts:
            out.conflicts[k.reason] += 1
            out.conflict_rows.append(
                IdentityConflictRow(
                    identifier=k.identifier,
                    existing_key=k.existing_key,
                    claimed_key=k.claimed_key,
                    reason=k.reason,
                    event_id=k.event_id,
                    occurred_at=k.occurred_ms // 1000,
                    detected_at=now_ms // 1000,
                )
            )
    return out
