"""Faust's Kafka consumer, delivering whole fetches of the pipeline's topics to their agents.

Faust hands a fetched record to its streams one at a time: for each message a task races the
delivery against a rebalance, the conductor decodes it into an event and queues it, the stream
iterator takes it, tracks it and runs its processors, and the take buffer collects it again. That
costs a worker more CPU per single-event touchpoint than everything the core does with it. The
agents only ever want batches, so for the topics an app names in `batched_topics` this consumer
gives each agent's channel the messages of one fetch as one list: one queue item, one delivery,
one stream step per fetch. Everything else stays Faust's: the group, assignment and rebalances,
the read offsets and gaps, the flow control that a rebalance suspends, commits of acked offsets.

The agent takes the list through `Batches.take`, which does per list what the stream iterator did
per event: it drops messages of an earlier consumer generation or taken while flow is suspended,
and tracks the rest as pending acks (so a rebalance waits for them); the agent acks them after
their rows and writes are stored, as before.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from functools import partial
from time import monotonic
from typing import Any, cast

import faust
from faust.transport.consumer import CONSUMER_FETCHING
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP, Message
from mode import Service

__all__ = ["App", "Batches", "BatchingConsumer"]


class _ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    """Faust's consumer thread, with the app's fetch wait instead of the 1.5 s Faust writes into the call."""

    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        wait_ms = getattr(self.app, "fetch_max_wait_ms", None)
        if wait_ms is not None:
            consumer._fetch_max_wait_ms = wait_ms  # read when aiokafka builds its fetcher, at start()
        return consumer


class BatchingConsumer(faust_aiokafka.Consumer):
    """Faust's aiokafka consumer; the app's batched topics get a fetch's messages as one list."""

    def _new_consumer_thread(self) -> faust_aiokafka.AIOKafkaConsumerThread:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    async def _drain_messages(self, fetcher: Any) -> None:  # pragma: no cover  (runs against a broker)
        # Faust's loop (faust.transport.consumer.Consumer._drain_messages), with the messages of
        # the batched topics gathered per topic and delivered once the fetch is read.
        callback = self.callback
        getmany = self.getmany
        consumer_should_stop = cast(Service, self)._stopped.is_set
        fetcher_should_stop = cast(Service, fetcher)._stopped.is_set
        get_read_offset = self._read_offset.__getitem__
        set_read_offset = self._read_offset.__setitem__
        flag_consumer_fetching = CONSUMER_FETCHING
        set_flag = self.diag.set_flag
        unset_flag = self.diag.unset_flag
        commit_every = self._commit_every
        acks_enabled_for = self.app.topics.acks_enabled_for
        batched: frozenset[str] = getattr(self.app, "batched_topics", frozenset())
        yield_every = 100
        num_since_yield = 0
        sleep = asyncio.sleep
        try:
            while not (consumer_should_stop() or fetcher_should_stop()):
                set_flag(flag_consumer_fetching)
                ait = getmany(timeout=1.0)
                await self.sleep(0)
                if not self.should_stop:
                    gathered: dict[str, list[Message]] = {}
                    async for tp, message in ait:
                        num_since_yield += 1
                        if num_since_yield > yield_every:
                            await sleep(0)
                            num_since_yield = 0
                        offset = message.offset
                        r_offset = get_read_offset(tp)
                        if r_offset is None or offset >= r_offset:
                            gap = offset - (r_offset or 0)
                            if gap > 1 and r_offset and acks_enabled_for(message.topic):
                                await self._add_gap(tp, r_offset + 1, offset)
                            if commit_every is not None and self._n_acked >= commit_every:
                                self._n_acked = 0
                                await self.commit()
                            if tp.topic in batched:
                                gathered.setdefault(tp.topic, []).append(message)
                            else:
                                await self.wait_first(callback(message), self.suspend_flow.wait())
                            set_read_offset(tp, offset)
                    for topic, messages in gathered.items():
                        # A rebalance abandons a waiting delivery: its offsets are not acked, so
                        # the messages are read again by whoever owns the partitions next.
                        await self.wait_first(self._deliver(topic, messages), self.suspend_flow.wait())
                    unset_flag(flag_consumer_fetching)
        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                self.log.info("Broker stopped consumer, shutting down...")
                return
            raise
        except asyncio.CancelledError:
            if self.transport.app.should_stop:
                self.log.info("Consumer shutting down for user cancel.")
                return
            raise
        except Exception as exc:
            self.log.exception("Drain messages raised: %r", exc)
            raise
        finally:
            unset_flag(flag_consumer_fetching)

    async def _deliver(self, topic: str, messages: list[Message]) -> None:
        """The list to the one channel that reads `topic` (the agent's stream), as Faust's conductor
        delivers an event: without waiting while there is room, pausing the fetch of the list's
        partitions while the queue is under pressure (the other topics keep flowing), and waiting for
        room only when it is full, in a way a rebalance's clearing of the queue ends quietly (the
        messages were not tracked yet: whoever owns their partitions next reads them again)."""
        readers = [c for c in self.app.topics if topic in c.topics]  # type: ignore[attr-defined]  # all topics
        if len(readers) != 1:
            # Acks go straight to the consumer: a second reader's outputs could be committed unstored.
            raise RuntimeError(f"a batched topic needs exactly one reader: {topic} has {len(readers)}")
        await self.app.flow_control.acquire()  # as the conductor: nothing is delivered while a rebalance runs
        queue = readers[0].queue
        if queue.full():
            await asyncio.wait([asyncio.ensure_future(queue.put(messages))])
            return
        tps = {TP(m.topic, m.partition) for m in messages}  # Faust's TP: a fetched message's tp is aiokafka's
        queue.put_nowait_enhanced(
            messages, on_pressure_high=partial(self._pause, tps), on_pressure_drop=partial(self._resume, tps)
        )

    def _pause(self, tps: set[TP]) -> None:
        self.app.sensors.on_topic_buffer_full(next(iter(tps)))
        for tp in tps:
            self.on_buffer_full(tp)

    def _resume(self, tps: set[TP]) -> None:
        for tp in tps:
            self.on_buffer_drop(tp)


class Transport(faust_aiokafka.Transport):
    Consumer = BatchingConsumer


class App(faust.App):
    """faust.App whose consumer delivers the `batched_topics` a fetch at a time (`BatchingConsumer`)
    and waits at most `fetch_max_wait_ms` for a fetch (CXJ_KAFKA_FETCH_MAX_WAIT_MS)."""

    batched_topics: frozenset[str] = frozenset()
    fetch_max_wait_ms: int | None = None

    def _new_transport(self) -> Any:
        return Transport(self.conf.broker_consumer, self)


class Batches:
    """What an agent does with each list it takes: drop stale messages, track the rest, ack them."""

    def __init__(self, app: faust.App) -> None:
        self.app = app

    def take(self, messages: Sequence[Message]) -> list[Message]:
        """The messages to process: those of the current generation, none while flow is suspended.

        They are tracked as pending acks, as Faust's stream iterator tracks each event of a topic
        with acks enabled (all of ours) that it yields.
        """
        app = self.app
        if not app.flow_control.is_active():
            return []
        generation = app.consumer_generation_id
        current = [m for m in messages if m.generation_id == generation]
        if current and app.topics.acks_enabled_for(current[0].topic):  # one topic per list
            track = app.consumer.track_message
            for m in current:
                if not m.tracked:
                    m.tracked = True
                    track(m)
        inbound = app.monitor.stream_inbound_time  # Faust's check for streams that stopped reading
        now = monotonic()
        for tp in {TP(m.topic, m.partition) for m in current}:
            inbound[tp] = now
        return current

    async def ack(self, messages: Sequence[Message]) -> None:
        """Their offsets may be committed (after the rows and writes they caused are stored)."""
        ack, out = self.app.consumer.ack, self.app.sensors.on_message_out
        for m in messages:
            if ack(m):
                out(m.tp, m.offset, m)
