"""The batching consumer's delivery of a fetch to an agent's queue, without a broker."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import faust
import pytest
from faust.types import TP
from faust.types.tuples import ConsumerMessage

from schemas.settings import Settings
from streams.runtime.app import create_app
from tests.factories import kafka_message

TOPIC = "cx.touchpoints"


def _messages(partition: int, n: int = 2) -> list[ConsumerMessage]:
    return [kafka_message(TOPIC, partition, offset, b"{}") for offset in range(n)]


@pytest.fixture
async def reader(tmp_path: Path) -> tuple[Any, Any]:
    """The app's consumer and the one channel that reads the topic (as an agent's stream registers it)."""
    app = create_app(Settings(home=tmp_path))  # type: ignore[call-arg]
    app.flow_control.resume()  # as after the worker's first assignment
    channel = faust.Topic(app, topics=[TOPIC], value_type=bytes, maxsize=4).clone(is_iterator=True)
    app.topics.add(channel)
    consumer = app.consumer
    consumer._active_partitions = {TP(TOPIC, p) for p in range(4)}
    return consumer, channel


async def test_a_fetch_is_one_queue_item_and_pressure_pauses_only_its_partitions(reader: tuple[Any, Any]) -> None:
    consumer, channel = reader
    for p in range(4):  # the fourth list finds the queue under pressure (3 of 4 taken)
        await consumer._deliver(TOPIC, _messages(p))
    assert channel.queue.qsize() == 4
    assert consumer._buffered_partitions == {TP(TOPIC, 3)}
    assert consumer._active_partitions == {TP(TOPIC, p) for p in (0, 1, 2)}
    first = channel.queue.get_nowait()  # as the stream iterator takes what is queued
    assert [m.offset for m in first] == [0, 1] and {m.partition for m in first} == {0}
    channel.queue.get_nowait()
    channel.queue.get_nowait()
    assert consumer._buffered_partitions == {TP(TOPIC, 3)}
    channel.queue.get_nowait()  # taken at the drop level (1 left): fetching resumes
    assert not consumer._buffered_partitions and TP(TOPIC, 3) in consumer._active_partitions
    assert all(type(tp) is TP for tp in consumer._get_active_partitions())  # Faust asserts it on every fetch


async def test_a_delivery_waiting_for_room_ends_quietly_when_a_rebalance_clears_the_queue(
    reader: tuple[Any, Any],
) -> None:
    """Faust clears the agents' queues on a rebalance, cancelling waiting puts: that must not crash the fetcher."""
    consumer, channel = reader
    for p in range(4):
        await consumer._deliver(TOPIC, _messages(p))
    assert channel.queue.full()
    waiting = asyncio.ensure_future(consumer._deliver(TOPIC, _messages(0)))
    await asyncio.sleep(0.01)
    assert not waiting.done()
    channel.queue.clear()
    await asyncio.wait_for(waiting, 1)
    assert waiting.exception() is None and channel.queue.empty()


async def test_a_batched_topic_with_two_readers_is_refused(reader: tuple[Any, Any]) -> None:
    consumer, _ = reader
    consumer.app.topics.add(faust.Topic(consumer.app, topics=[TOPIC], maxsize=4).clone(is_iterator=True))
    with pytest.raises(RuntimeError, match=r"exactly one reader: cx\.touchpoints has 2"):
        await consumer._deliver(TOPIC, _messages(0))
