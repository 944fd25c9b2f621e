"""An in-memory pipeline for property tests: stage 1 routing, N partitions, the arbiter, lagging replicas.

Every hop of the real topology is a queue here, and a seeded random picks which queue delivers
next, so one run explores one interleaving of partitions, claims and replica updates.
"""

from __future__ import annotations

import random
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from hypothesis import strategies as st

from schemas.records import LinkClaim, TouchpointRecord
from streams.domain.arbiter import arbitrate
from streams.domain.codec import Item
from streams.domain.customer import Policy
from streams.domain.identity import IdentityGraph
from streams.domain.outputs import Output
from streams.domain.processor import PartitionState
from streams.domain.routing import partition_for, route
from tests.reference.codec import Forward, decode_entry
from tests.reference.customer import CustomerState

NOW = 2_000_000_000_000


def draw_identity(draw: Any, person: int, customer_id: str, with_customer: st.SearchStrategy[bool]) -> dict[str, str]:
    """A touchpoint's identity for one person of a property test: up to two of the person's anonymous
    identifiers (two spellings each), and the customer id when `with_customer` says so (always when
    no identifier was picked)."""
    own = {
        "anonymous_id": f"anon-{person}-{draw(st.integers(0, 1))}",
        "phone": f"+86 138 0013 80{person}{draw(st.integers(0, 1))}",
        "device_id": f"dev-{person}",
    }
    picked = draw(st.lists(st.sampled_from(sorted(own)), unique=True, max_size=2))
    identity = {k: own[k] for k in picked}
    if not identity or draw(with_customer):
        identity["customer_id"] = customer_id
    return identity


@dataclass
class Cluster:
    policy: Policy
    partitions: int = 4
    max_identifiers: int = 50
    graph: IdentityGraph = field(init=False)
    replica: dict[str, str] = field(default_factory=dict)
    outputs: list[Output] = field(default_factory=list)
    # (index in outputs, key, absorbed key): a state that reached its key and was merged into it there
    absorbed: list[tuple[int, str, str]] = field(default_factory=list)
    # The stage-2 implementation: the core's, or tests/reference/processor.py's for differential tests.
    state_class: Any = PartitionState

    def __post_init__(self) -> None:
        self.graph = IdentityGraph(max_identifiers=self.max_identifiers)
        self.states = [self.state_class(p, self.policy) for p in range(self.partitions)]
        self.queues: list[deque[Item]] = [deque() for _ in range(self.partitions)]
        self.claims: deque[LinkClaim] = deque()
        self.replica_updates: deque[tuple[str, str]] = deque()
        self.inbox: deque[TouchpointRecord] = deque()

    def feed(self, records: list[TouchpointRecord]) -> None:
        self.inbox.extend(records)

    def _stage1(self) -> None:
        routed = route([self.inbox.popleft()], self.replica.get, self.partitions)
        self.claims.extend(routed.claims)
        for p, items in routed.by_partition.items():
            self.queues[p].extend(items)

    def _arbiter(self) -> None:
        arb = arbitrate(self.graph, [self.claims.popleft()], NOW, self.partitions)
        for link in arb.links:
            self.replica_updates.append((link.identifier, link.customer_key))
        for p, items in arb.merges.items():
            self.queues[p].extend(items)

    def _partition(self, p: int, rng: random.Random) -> None:
        n = rng.randint(1, max(1, len(self.queues[p])))
        items = [self.queues[p].popleft() for _ in range(n)]
        out = self.states[p].process(items, NOW, watermark=0)
        self.outputs.append(out)
        for item in items:
            held = self.states[p].data.get(item.key)
            if item.kind == "state" and held is not None and isinstance(decode_entry(held), CustomerState):
                moved = decode_entry(item.blob)
                self.absorbed.append((len(self.outputs) - 1, item.key, moved.key))
        for item in out.forward:
            self.queues[partition_for(item.key, self.partitions)].append(item)

    def run(self, rng: random.Random) -> None:
        """Deliver until every queue is empty, in an order the seed decides."""
        while True:
            choices: list[tuple[str, int]] = []
            if self.inbox:
                choices.append(("in", 0))
            if self.claims:
                choices.append(("claims", 0))
            if self.replica_updates:
                choices.append(("replica", 0))
            choices += [("p", p) for p, q in enumerate(self.queues) if q]
            if not choices:
                return
            kind, p = rng.choice(choices)
            if kind == "in":
                self._stage1()
            elif kind == "claims":
                self._arbiter()
            elif kind == "replica":
                identifier, key = self.replica_updates.popleft()
                self.replica[identifier] = key
            else:
                self._partition(p, rng)

    def release(self, after_ms: int) -> None:
        """Let `after_ms` of wall time pass: held alerts come due (journeys stay open: watermark 0)."""
        for state in self.states:
            self.outputs.append(state.expire(NOW + after_ms, watermark=0))

    def customers(self) -> dict[str, CustomerState]:
        """Live customer states (forwards left out), by key."""
        found = {}
        for state in self.states:
            for key, data in state.data.items():
                entry = decode_entry(data)
                if not isinstance(entry, Forward):
                    found[key] = entry
        return found

    def alert_instants(self) -> dict[str, set[int]]:
        """Crossing instants alerted per customer key, whatever key raised them, resolved to today's key."""
        resolved: dict[str, set[int]] = {}
        for out in self.outputs:
            for alert in out.alerts:
                key = self.resolve(alert.customer_key)
                resolved.setdefault(key, set()).add(int(alert.triggered_at.timestamp() * 1000))
        return resolved

    def raised(self) -> list[tuple[int, str, int]]:
        """Every alert as (index of the output that raised it, raising key, instant)."""
        return [
            (i, a.customer_key, int(a.triggered_at.timestamp() * 1000))
            for i, out in enumerate(self.outputs)
            for a in out.alerts
        ]

    def lineage(self, key: str, until: int) -> set[str]:
        """The keys whose state `key` held by output `until` (itself, what it absorbed, what they had)."""
        found = {key}
        for i, target, source in self.absorbed:
            if i <= until and target == key:
                found |= self.lineage(source, i)
        return found

    def resolve(self, key: str) -> str:
        for _ in range(100):
            p = partition_for(key, self.partitions)
            data = self.states[p].data.get(key)
            entry = decode_entry(data) if data is not None else None
            if not isinstance(entry, Forward):
                return key
            key = entry.target
        raise AssertionError("forward cycle")
