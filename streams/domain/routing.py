"""Stage 1: which customer key and stitch partition each accepted touchpoint goes to, and the link claims.

The ingest agent, the in-memory cluster of the property tests and `cxj bench state` all route with
`route`, so what the properties prove is what the worker does.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field

from schemas.records import LinkClaim, TouchpointRecord, with_key
from streams.domain.codec import Item
from streams.domain.identity import Lookup, claim_for, route_key

__all__ = ["Routed", "partition_for", "route"]


def partition_for(key: str, partitions: int) -> int:
    """Stable partition of a customer key (CRC-32: the same in every process and release)."""
    return zlib.crc32(key.encode()) % partitions


@dataclass(slots=True)
class Routed:
    """Stitch items by partition, in input order, and the claims the touchpoints make."""

    by_partition: dict[int, list[Item]] = field(default_factory=dict)
    claims: list[LinkClaim] = field(default_factory=list)


def route(records: Iterable[TouchpointRecord], lookup: Lookup, partitions: int) -> Routed:
    """Stitch each record to its key (customer id, else a linked identifier) and say who links to whom."""
    out = Routed()
    for rec in records:
        key = route_key(rec, lookup)
        rec = with_key(rec, key)
        claim = claim_for(rec, key, lookup)
        if claim is not None:
            out.claims.append(claim)
        out.by_partition.setdefault(partition_for(key, partitions), []).append(Item("tp", key, rec))
    return out
