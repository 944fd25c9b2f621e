"""Worker state: customer partitions recovered from their changelog, and the identity replica."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from schemas.settings import Settings
from streams.domain.customer import Policy
from streams.domain.identity import IdentityGraph
from streams.domain.processor import PartitionState
from streams.runtime.topics import CHANGELOG, LINKS

__all__ = ["ChangelogLoader", "IdentityReplica", "StateStore", "read_to_end"]

log = logging.getLogger(__name__)


def _consumer(settings: Settings, client_id: str) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap,
        client_id=client_id,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=8 * 1024 * 1024,
        fetch_max_bytes=64 * 1024 * 1024,
        **settings.aiokafka_options(),
    )


async def read_to_end(
    settings: Settings, topic: str, partitions: Iterable[int], *, client_id: str = "cx-recovery"
) -> AsyncIterator[list[Any]]:
    """Every record of the partitions, from the beginning to the end offsets seen at the start."""
    consumer = _consumer(settings, client_id)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in partitions]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        pending = {tp for tp in tps if ends[tp] > 0}
        while pending:
            batch = await consumer.getmany(*pending, timeout_ms=1000, max_records=50_000)
            for records in batch.values():
                if records:
                    yield records
            for tp in list(pending):
                if await consumer.position(tp) >= ends[tp]:
                    pending.discard(tp)
    finally:
        await consumer.stop()


# partition -> its changelog entries (key, value or None) in log order
ChangelogLoader = Callable[[int], Awaitable[Iterable[tuple[str, bytes | None]]]]


class StateStore:
    """One PartitionState per assigned stitch partition; `ready(p)` waits for its recovery."""

    def __init__(self, settings: Settings, policy: Policy, *, loader: ChangelogLoader | None = None) -> None:
        self.settings = settings
        self.policy = policy
        self.loader: ChangelogLoader = loader or self._read_changelog
        self.partitions: dict[int, PartitionState] = {}
        self._ready: dict[int, asyncio.Event] = {}
        self._tasks: dict[int, asyncio.Task[None]] = {}

    def assign(self, partitions: Iterable[int]) -> None:
        for p in partitions:
            if p not in self._ready:
                self._ready[p] = asyncio.Event()
                self._tasks[p] = asyncio.get_running_loop().create_task(self._recover(p))

    def revoke(self, partitions: Iterable[int]) -> None:
        for p in partitions:
            task = self._tasks.pop(p, None)
            if task is not None and not task.done():
                task.cancel()
            self._ready.pop(p, None)
            self.partitions.pop(p, None)

    async def ready(self, partition: int) -> PartitionState:
        event = self._ready.get(partition)
        if event is None:
            # Items can arrive for a partition before the rebalance callback ran.
            self.assign([partition])
            event = self._ready[partition]
        await event.wait()
        return self.partitions[partition]

    async def _read_changelog(self, p: int) -> Iterable[tuple[str, bytes | None]]:
        latest: dict[str, bytes | None] = {}
        async for records in read_to_end(self.settings, CHANGELOG, [p], client_id=f"cx-recover-{p}"):
            for r in records:
                latest[r.key.decode()] = r.value
        return latest.items()

    async def _recover(self, p: int) -> None:
        state = PartitionState(p, self.policy, self.settings.forward_ttl_seconds * 1000)
        state.restore(await self.loader(p))
        self.partitions[p] = state
        log.info("state partition %d recovered: %d keys", p, len(state.data))
        self._ready[p].set()

    def stats(self) -> tuple[int, int]:
        """(keys, serialized bytes) held."""
        held = [s.stats() for s in self.partitions.values()]
        return sum(k for k, _ in held), sum(b for _, b in held)


class IdentityReplica:
    """identifier -> customer key, replicated in every worker from the links topic.

    Stage 1 routes with it; it may lag the arbiter by a moment, which forwards absorb.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.mapping: dict[str, str] = {}
        self.caught_up = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.get: Callable[[str], str | None] = self.mapping.get

    def apply(self, identifier: str, key: str) -> None:
        self.mapping[identifier] = key

    def remove(self, identifier: str) -> None:
        self.mapping.pop(identifier, None)

    async def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._follow())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _follow(self) -> None:
        consumer = _consumer(self.settings, "cx-identity-replica")
        await consumer.start()
        try:
            partitions = consumer.partitions_for_topic(LINKS) or set()
            if not partitions:
                await consumer._client.force_metadata_update()
                partitions = consumer.partitions_for_topic(LINKS) or {0}
            tps = [TopicPartition(LINKS, p) for p in sorted(partitions)]
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            ends = await consumer.end_offsets(tps)
            while True:
                batch = await consumer.getmany(timeout_ms=500, max_records=50_000)
                for records in batch.values():
                    for r in records:
                        if r.value is None:  # a forgotten identifier (`cxj forget`)
                            self.mapping.pop(r.key.decode(), None)
                        else:
                            self.mapping[r.key.decode()] = orjson.loads(r.value)["customer_key"]
                if not self.caught_up.is_set():
                    positions = [await consumer.position(tp) for tp in tps]
                    if all(pos >= ends[tp] for pos, tp in zip(positions, tps, strict=True)):
                        self.caught_up.set()
        finally:
            await consumer.stop()


async def load_graph(settings: Settings, max_identifiers: int) -> IdentityGraph:
    """The arbiter's graph, rebuilt from the compacted links topic (the arbiter's own output)."""
    graph = IdentityGraph(max_identifiers=max_identifiers)
    changes: list[tuple[str, str | None]] = []
    async for records in read_to_end(settings, LINKS, range(settings.topic_partitions), client_id="cx-arbiter"):
        changes.extend((r.key.decode(), orjson.loads(r.value)["customer_key"] if r.value else None) for r in records)
    graph.load(changes)
    return graph
