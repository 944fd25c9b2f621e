"""The Faust agents: decode, call the pure logic, hand outputs to the flusher, count metrics."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import faust
from cx_core import kafka_partition
from faust.types import Message as KafkaMessage
from faust.types import StreamT
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from schemas.records import DLQ_HEADER_PREFIX, DLQ_ORIGIN_HEADER, DeadLetter, ForgetRequest
from schemas.rows import ErasureRow, Table
from schemas.settings import Settings
from streams.domain.arbiter import Arbitration, Link, arbitrate
from streams.domain.codec import Item, decode_claims, encode_items
from streams.domain.dead_letters import dead_letter_row
from streams.domain.identity import IdentityGraph
from streams.domain.ingest import Message, ingest_routed
from streams.domain.outputs import Output, alert_row
from streams.domain.routing import partition_for
from streams.runtime.consumer import App, Batches
from streams.runtime.flush import Flusher
from streams.runtime.metrics import PipelineMetrics
from streams.runtime.policies import ingest_config_from, policy_from
from streams.runtime.producer import Sender
from streams.runtime.store import ChangelogLoader, IdentityReplica, StateStore, load_graph
from streams.runtime.topics import ALERTS, CHANGELOG, CLAIMS, DLQ, LINKS, STITCH, TOUCHPOINTS

__all__ = ["Pipeline"]

log = logging.getLogger(__name__)

_QUEUED = 4  # an agent's queue: fetches taken and not yet processed (pressure pauses them at 3)
_STITCH_MESSAGES = 256  # stitch messages per core call (each holds one ingest batch's items for a partition)


@dataclass
class Pipeline:
    """The worker: three agents (ingest, stitch, identity arbiter), two timers, /metrics.

    Each agent reads its topic a fetch at a time: a list of Kafka messages per step (`consumer`).
    """

    app: App
    settings: Settings
    producer: Sender
    flusher: Flusher
    metrics: PipelineMetrics
    registry: CollectorRegistry
    clock: Callable[[], float] = time.time
    # Injected in agent tests (no broker); built from the settings otherwise.
    replica: IdentityReplica | None = None
    changelog_loader: ChangelogLoader | None = None

    def __post_init__(self) -> None:
        s = self.settings
        self.partitions = s.topic_partitions
        self.policy = policy_from(s)
        for action in self.policy.playbook.actions:  # at 0 from the start, for the alert's increase()
            self.metrics.alert_actions.labels(action)
        self.ingest_cfg = ingest_config_from(s)
        self.lateness_ms = s.journey_lateness_seconds * 1000
        self.store = StateStore(s, self.policy, loader=self.changelog_loader)
        self.flusher.send_changelog = self._send_changelog
        self.routing: IdentityReplica = self.replica or IdentityReplica(s)
        self.graph: IdentityGraph | None = None
        self._graph_ready = asyncio.Event()
        self._graph_task: asyncio.Task[None] | None = None
        self._assigned: set[Any] = set()
        self._start_lock = asyncio.Lock()
        self._started = False
        app = self.app
        app.batched_topics = frozenset({TOUCHPOINTS, STITCH, CLAIMS})
        self.batches = Batches(app)
        touchpoints, stitch, claims = (
            # A queue item is a fetch's messages: a few in flight hold the consumer back, not 8,192.
            # (faust.Topic itself: App.topic drops `maxsize`.)
            faust.Topic(
                app, topics=[name], value_type=bytes, value_serializer="raw", key_serializer="raw", maxsize=_QUEUED
            )
            for name in (TOUCHPOINTS, STITCH, CLAIMS)
        )
        self.agents = {
            "ingest": app.agent(touchpoints, name="ingest")(self.ingest_agent),
            "stitch": app.agent(stitch, name="stitch")(self.stitch_agent),
            "identity": app.agent(claims, name="identity")(self.identity_agent),
        }
        app.timer(interval=5.0)(self.expire_journeys)
        registry = self.registry

        async def metrics_view(view: Any, request: Any) -> Any:
            return view.bytes(generate_latest(registry), content_type=CONTENT_TYPE_LATEST.split(";")[0])

        app.page("/metrics")(metrics_view)
        # Faust's signal stubs want a `signal` keyword these receivers take through **_.
        app.on_partitions_assigned.connect(self.on_assigned)  # type: ignore[arg-type]
        app.on_partitions_revoked.connect(self.on_revoked)  # type: ignore[arg-type]
        app.on_before_shutdown.connect(self.shutdown)

    # --- lifecycle -------------------------------------------------------------------------------

    async def started(self) -> None:
        """Start the producer, replica and flusher once, from whichever agent runs first."""
        async with self._start_lock:
            if self._started:
                return
            await self.producer.start()
            await self.routing.start()
            self.flusher.start()
            self._started = True
        try:
            # Route with a replica that has read the links so far; forwards cover any lag.
            await asyncio.wait_for(self.routing.caught_up.wait(), timeout=30)
        except TimeoutError:
            log.warning("identity replica still catching up after 30 s; routing anyway")

    async def shutdown(self, *_: Any, **__: Any) -> None:
        if self._started:
            await self.flusher.stop()
            await self.routing.stop()
            await self.producer.stop()
            self._started = False

    def _count_assignment(self, tps: set[Any], sign: int) -> None:
        if sign > 0:
            self._assigned |= tps
        else:
            self._assigned -= tps
        for topic in {tp.topic for tp in tps}:
            self.metrics.assigned_partitions.labels(topic).set(sum(1 for tp in self._assigned if tp.topic == topic))

    async def on_assigned(self, sender: Any, assigned: set[Any], **_: Any) -> None:
        self._count_assignment(assigned, +1)
        self.store.assign(tp.partition for tp in assigned if tp.topic == STITCH)
        if any(tp.topic == CLAIMS for tp in assigned) and self._graph_task is None:
            self._graph_task = asyncio.get_running_loop().create_task(self._load_graph())

    async def on_revoked(self, sender: Any, revoked: set[Any], **_: Any) -> None:
        self._count_assignment(revoked, -1)
        self.store.revoke(tp.partition for tp in revoked if tp.topic == STITCH)
        if any(tp.topic == CLAIMS for tp in revoked):
            if self._graph_task is not None:
                self._graph_task.cancel()
            self._graph_task, self.graph = None, None
            self._graph_ready.clear()

    async def _load_graph(self) -> None:
        self.graph = await load_graph(self.settings, self.settings.max_identifiers)
        log.info("identity arbiter ready: %d identifiers", len(self.graph.mapping))
        self._graph_ready.set()

    def now_ms(self) -> int:
        return int(self.clock() * 1000)

    # --- stage 1: ingest ---------------------------------------------------------------------------

    async def ingest_agent(self, stream: StreamT[list[KafkaMessage]]) -> None:
        await self._in_parts(stream, self.settings.ingest_batch_max, self.ingest_batch)

    async def _in_parts(
        self, stream: StreamT[list[KafkaMessage]], most: int, handle: Callable[[Sequence[KafkaMessage]], Any]
    ) -> None:
        """Each fetch's current messages to `handle`, `most` at a time, held while the flusher is full."""
        await self.started()
        async for fetched in stream:
            messages = self.batches.take(fetched)
            for start in range(0, len(messages), most):
                await handle(messages[start : start + most])
                await self.flusher.backpressure()

    async def ingest_batch(self, fetched: Sequence[KafkaMessage]) -> None:
        """Validate, stitch-route and forward at once; ack after dead letters are stored."""
        now = self.now_ms()
        messages = [
            # A record without a value (a tombstone) is a payload that is not JSON: a dead letter.
            Message(m.value or b"", m.topic, m.partition, m.offset, int(m.timestamp * 1000) if m.timestamp else 0)
            for m in fetched
        ]
        result = ingest_routed(messages, self.ingest_cfg, now, self.routing.get, self.partitions)
        m = self.metrics
        for channel, n in result.channels:
            m.child(m.touchpoints, channel).inc(n)
        for dead in result.rejected:
            m.child(m.rejections, dead.reason.value).inc()
        if result.replaced_timestamps:
            m.kafka_timestamps_replaced.inc(result.replaced_timestamps)
        for name, n in result.pii_hashed.items():
            m.child(m.pii_hashed, name).inc(n)
        self.flusher.add_futures(await self._send_ingest(result.stitch, result.claims, result.rejected))
        if result.rejected:
            self.flusher.add_rows({Table.DEAD_LETTERS: [dead_letter_row(d) for d in result.rejected]})
        self.flusher.add_ack(partial(self.batches.ack, fetched))

    async def _send_ingest(
        self,
        stitch: list[tuple[int, bytes, int]],
        claims: bytes | None,
        rejected: list[DeadLetter],
    ) -> list[asyncio.Future[Any]]:
        futures = []
        for p, payload, _ in stitch:
            futures.append(await self.producer.send(STITCH, payload, partition=p))
        if claims is not None:
            futures.append(await self.producer.send(CLAIMS, claims, partition=0))
        for d in rejected:
            headers = [
                (DLQ_HEADER_PREFIX + "reason", d.reason.value.encode()),
                (DLQ_HEADER_PREFIX + "detail", d.detail.encode()),
                (
                    DLQ_ORIGIN_HEADER,
                    f"{d.topic}/{d.partition}/{d.offset}/{d.index}".encode(),
                ),
            ]
            futures.append(
                await self.producer.send(DLQ, d.raw, partition=d.partition % self.partitions, headers=headers)
            )
        return futures

    # --- stage 2: stitch, experiences, journeys, alerts ----------------------------------------------

    async def stitch_agent(self, stream: StreamT[list[KafkaMessage]]) -> None:
        await self._in_parts(stream, _STITCH_MESSAGES, self.stitch_batch)

    async def stitch_batch(self, messages: Sequence[KafkaMessage]) -> None:
        """Apply the stitch messages to their partitions' states; ack once their outputs are stored."""
        by_partition: dict[int, list[bytes]] = defaultdict(list)
        for m in messages:
            if m.value is not None:  # the stage writes no record without one
                by_partition[m.partition].append(m.value)
        for p, values in by_partition.items():
            state = await self.store.ready(p)
            now = self.now_ms()
            # The messages' bytes go to the core as they are: it decodes the items itself.
            out = state.process_encoded(values, now, self._watermark(state.max_event_ms, now))
            await self._hand_over(p, out)
            self.flusher.add_received(out.received_ms)
        self.flusher.add_ack(partial(self.batches.ack, messages))

    def _watermark(self, max_event_ms: int, now: int) -> int:
        # Event time, or the wall clock when traffic stops, minus the allowed lateness.
        return max(max_event_ms, now) - self.lateness_ms

    async def _hand_over(self, partition: int, out: Output) -> None:
        """Rows and changelog go through the flusher; re-routed items leave at once."""
        m = self.metrics
        rows = out.rows
        if out.alerts:
            rows.setdefault(Table.CHURN_ALERTS, []).extend(alert_row(a) for a in out.alerts)
        self.flusher.add_rows(rows)
        if out.forward:
            self.flusher.add_futures(await self._send_forward(out.forward))
        alerts = out.alerts
        # After the rows: a changelog ahead of ClickHouse would make the replay of these events look
        # like duplicates and their rows would never be written. One record per key per flush.
        if out.changed:
            self.flusher.add_changelog(partition, out.changed)
        if alerts:
            self.flusher.add_send(lambda: self._send_alerts(alerts))
        child = m.child
        for name, n in out.signals.items():
            child(m.signals, name).inc(n)
        for outcome, n in out.outcomes_decided.items():
            child(m.alert_outcomes, outcome).inc(n)
        for a in alerts:
            child(m.churn_alerts, a.level).inc()
            for action in a.actions:  # the playbook's ids: as few as its actions
                child(m.alert_actions, action.action).inc()
        if out.duplicates:
            m.duplicates.inc(out.duplicates)
        for jtype, n in out.journeys_opened.items():
            child(m.journeys_opened, jtype).inc(n)
        for (jtype, status), n in out.journeys_closed.items():
            child(m.journeys_closed, jtype, status).inc(n)
        for jtype, seconds in out.journey_seconds:
            child(m.journey_duration, jtype).observe(seconds)
        if out.merges:
            m.identity_merges.inc(out.merges)
        if out.erased:
            child(m.erasures, "state").inc(out.erased)
        self._publish_held()

    def _publish_held(self) -> None:
        self.metrics.alerts_held.set(sum(state.held for state in self.store.partitions.values()))

    async def _send_forward(self, forward: list[Item]) -> list[asyncio.Future[Any]]:
        routed: dict[int, list[Item]] = defaultdict(list)
        for item in forward:
            routed[partition_for(item.key, self.partitions)].append(item)
        return [await self.producer.send(STITCH, encode_items(items), partition=p) for p, items in routed.items()]

    async def _send_changelog(self, partition: int, changed: dict[str, bytes | None]) -> list[asyncio.Future[Any]]:
        return await self.producer.send_many(CHANGELOG, partition, ((k.encode(), v) for k, v in changed.items()))

    async def _send_alerts(self, alerts: list[Any]) -> list[asyncio.Future[Any]]:
        futures = []
        for alert in alerts:
            futures.append(
                await self.producer.send(ALERTS, alert.model_dump_json().encode(), key=alert.customer_key.encode())
            )
        return futures

    async def expire_journeys(self) -> None:
        if not self._started:
            return
        now = self.now_ms()
        for p, state in list(self.store.partitions.items()):
            out = state.expire(now, self._watermark(state.max_event_ms, now))
            if out.rows or out.changed:
                await self._hand_over(p, out)
        keys, size = self.store.stats()
        self._publish_held()  # also after restores and revocations, which hand nothing over
        self.metrics.state_customers.set(keys)
        self.metrics.state_bytes.set(size)
        newest = max((s.max_event_ms for s in self.store.partitions.values()), default=0)
        if newest:
            self.metrics.watermark_lag.set(max(0.0, (now - newest) / 1000))

    # --- the identity arbiter -------------------------------------------------------------------------

    async def identity_agent(self, stream: StreamT[list[KafkaMessage]]) -> None:
        await self.started()
        async for fetched in stream:
            await self._graph_ready.wait()
            messages = self.batches.take(fetched)  # after the wait: a rebalance may have made them stale
            if not messages:
                continue
            graph = self.graph
            assert graph is not None
            now = self.now_ms()
            arb = Arbitration()
            unlinked: list[str] = []
            erasure_rows: list[ErasureRow] = []
            for m in messages:
                for claim in decode_claims(m.value) if m.value is not None else ():  # we write none without
                    if isinstance(claim, ForgetRequest):
                        erasure_rows.append(self._forget(graph, claim, unlinked, arb.merges, now))
                    else:
                        seen = len(arb.links)
                        arbitrate(graph, (claim,), now, self.partitions, arb)
                        for link in arb.links[seen:]:  # in claim order: a later forget in the batch wins
                            self.routing.apply(link.identifier, link.customer_key)
            for reason, n in arb.conflicts.items():
                self.metrics.child(self.metrics.identity_conflicts, reason).inc(n)
            self.metrics.identity_links.inc(len(arb.links))
            self.flusher.add_rows(
                {
                    Table.IDENTITY_LINKS: arb.link_rows,
                    Table.IDENTITY_CONFLICTS: arb.conflict_rows,
                    Table.ERASURES: erasure_rows,
                }
            )
            links, merges = arb.links, arb.merges
            self.flusher.add_send(partial(self._send_identity, links, merges, unlinked))
            self.flusher.add_ack(partial(self.batches.ack, messages))

    def _forget(
        self, graph: IdentityGraph, request: ForgetRequest, unlinked: list[str], items: dict[int, list[Item]], now: int
    ) -> ErasureRow:
        """Unlink the customer's identifiers everywhere (tombstones on the links topic reach every replica)
        and send each of its keys' partitions a forget item; the command waits for their acknowledgements."""
        erased = graph.forget(request.subject)
        for identifier in erased.identifiers:
            self.routing.remove(identifier)
        unlinked.extend(erased.identifiers)
        for number, key in enumerate(erased.keys):
            items.setdefault(partition_for(key, self.partitions), []).append(
                Item("forget", key, None, request.request_id, str(number).encode())
            )
        self.metrics.erasures.labels("identity").inc()
        log.info("forget request %s: %d identifiers unlinked, %d keys to erase",
                 request.request_id, len(erased.identifiers), len(erased.keys))  # fmt: skip
        return ErasureRow(
            request_id=request.request_id,
            stage="identity",
            item=0,
            partition=0,
            expected=len(erased.keys),
            erased=len(erased.identifiers),
            done_at=now // 1000,
        )

    async def _send_identity(
        self, links: list[Link], merges: dict[int, list[Item]], unlinked: list[str]
    ) -> list[asyncio.Future[Any]]:
        # The merges are delivered first: the links topic is what a restarted arbiter rebuilds its graph
        # from, and a replayed claim whose links it already holds merges nothing. Links that landed
        # ahead of their merges (a kill between the two) would strand the anonymous states for good.
        merging = [await self.producer.send(STITCH, encode_items(items), partition=p) for p, items in merges.items()]
        if merging:
            await asyncio.gather(*merging)
        # One record batch per partition (a send per link took a third of a flush at 5,000 events/s),
        # in the partition Kafka's default partitioner gives the key, as for any keyed send.
        records: dict[int, list[tuple[bytes, bytes | None]]] = defaultdict(list)
        for link in links:
            key = link.identifier.encode()
            records[kafka_partition(key, self.partitions)].append((key, link.to_json()))
        for identifier in unlinked:  # tombstones: compaction removes the identifier from the topic
            key = identifier.encode()
            records[kafka_partition(key, self.partitions)].append((key, None))
        futures: list[asyncio.Future[Any]] = []
        for p, batch in records.items():
            futures += await self.producer.send_many(LINKS, p, batch)
        return futures
