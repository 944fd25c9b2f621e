"""The identity arbiter's claim handling: what a link claim changes, as records, rows and merge requests.

The arbiter agent, and the in-memory cluster of the property tests, both hand claims to `arbitrate`
(the graph itself is streams/domain/identity.py); the agent then publishes and stores what it returns.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from schemas.records import IdentityLink, LinkClaim
from schemas.rows import IdentityConflictRow, IdentityLinkRow
from streams.domain.codec import Item
from streams.domain.identity import IdentityGraph
from streams.domain.routing import partition_for

__all__ = ["Arbitration", "arbitrate"]


@dataclass(slots=True)
class Arbitration:
    """Links for the links topic and table, conflicts for their table, merges for the stitch partitions."""

    links: list[IdentityLink] = field(default_factory=list)
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
            out.links.append(
                IdentityLink(
                    identifier=c.identifier,
                    customer_key=c.customer_key,
                    previous_key=c.previous_key,
                    event_id=c.event_id,
                    version=version,
                    linked_at=datetime.fromtimestamp(c.linked_ms / 1000, UTC),
                )
            )
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
