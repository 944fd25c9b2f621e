"""The Faust agents under `test_context()`: no broker, an in-memory producer and ClickHouse writer."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka.partitioner import murmur2
from cx_core import kafka_partition
from faust.types.tuples import ConsumerMessage
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from schemas.settings import Settings
from sinks.clickhouse import every_row
from sinks.writer import Batch
from streams.domain.codec import decode_items
from streams.domain.identity import IdentityGraph
from streams.domain.routing import partition_for
from streams.runtime.agents import Pipeline
from streams.runtime.app import create_app
from streams.runtime.flush import Flusher
from streams.runtime.metrics import PipelineMetrics
from streams.runtime.topics import CHANGELOG, CLAIMS, DLQ, LINKS, STITCH, TOUCHPOINTS
from tests.factories import kafka_message, touchpoint


class MemorySender:
    """Records every send; deliveries succeed at once."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes | None, bytes | None, int | None, Any]] = []

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    def _done(self) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        future.set_result(None)
        return future

    async def send(self, topic: str, value: bytes, *, key: bytes | None = None, partition: int | None = None,
                   headers: Any = None) -> asyncio.Future[Any]:  # fmt: skip
        self.sent.append((topic, key, value, partition, headers))
        return self._done()

    async def send_many(self, topic: str, partition: int, records: Any) -> list[asyncio.Future[Any]]:
        for key, value in records:
            self.sent.append((topic, key, value, partition, None))
        return [self._done()]

    def on(self, topic: str) -> list[tuple[str, bytes | None, bytes | None, int | None, Any]]:
        return [s for s in self.sent if s[0] == topic]


class MemoryWriter:
    def __init__(self) -> None:
        self.rows: dict[str, list[tuple[Any, ...]]] = defaultdict(list)

    def write(self, batch: Batch) -> dict[str, int]:
        written = {}
        for table in batch.tables():
            rows = every_row(batch.rows.get(table, []), batch.chunks.get(table, []))
            self.rows[table].extend(rows)
            written[table] = len(rows)
        return written


class StaticReplica:
    def __init__(self) -> None:
        self.mapping: dict[str, str] = {}
        self.get = self.mapping.get
        self.caught_up = asyncio.Event()
        self.caught_up.set()

    def apply(self, identifier: str, key: str) -> None:
        self.mapping[identifier] = key

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


async def _no_changelog(partition: int) -> list[tuple[str, bytes | None]]:
    return []


@pytest.fixture
def pipeline(tmp_path: Path) -> tuple[Pipeline, MemorySender, MemoryWriter]:
    settings = Settings(home=tmp_path, pii_secret="agent-test-secret-0123456789")  # type: ignore[arg-type]
    registry = CollectorRegistry()
    metrics = PipelineMetrics.create(registry)
    writer = MemoryWriter()
    sender = MemorySender()
    flusher = Flusher(writer, metrics, interval=3600)  # type: ignore[arg-type]
    pipe = Pipeline(
        create_app(settings),
        settings,
        sender,
        flusher,
        metrics,
        registry,
        replica=StaticReplica(),
        changelog_loader=_no_changelog,
    )  # type: ignore[arg-type]
    return pipe, sender, writer


_offsets: dict[tuple[str, int], int] = defaultdict(int)


def fetched(app: Any, topic: str, *values: bytes, partition: int = 0) -> list[ConsumerMessage]:
    """What the consumer hands an agent for one fetch: the topic's messages, as Faust builds them."""
    out = []
    for value in values:
        out.append(kafka_message(topic, partition, _offsets[topic, partition], value, app.consumer_generation_id))
        _offsets[topic, partition] += 1
    return out


def _acking(pipe: Pipeline, *topics: str) -> None:
    """The conductor's view once the worker has subscribed (test_context streams read a channel)."""
    pipe.app.topics.acking_topics.update(topics)


async def _settle(pipe: Pipeline) -> None:
    await asyncio.sleep(0.2)  # longer than the agents' take window
    await pipe.flusher.flush()


async def test_ingest_agent_routes_valid_touchpoints_and_dead_letters_the_rest(pipeline: Any) -> None:
    pipe, sender, writer = pipeline
    good = touchpoint("page_view", identity={"customer_id": "C-agent"})
    batch = {"events": [touchpoint("login", identity={"customer_id": "C-agent", "anonymous_id": "a-1"}),
                        {"not": "a touchpoint"}]}  # fmt: skip
    async with pipe.agents["ingest"].test_context() as agent:
        await agent.put(fetched(pipe.app, TOUCHPOINTS, orjson.dumps(good), b"{broken"))
        await agent.put(fetched(pipe.app, TOUCHPOINTS, orjson.dumps(batch)))
        await _settle(pipe)

    routed = [item for _, _, value, p, _ in sender.on(STITCH) for item in decode_items(value)]
    assert [it.record.event_id for it in routed] == [good["event_id"], batch["events"][0]["event_id"]]
    assert {p for *_, p, _ in sender.on(STITCH)} == {partition_for("C-agent", pipe.partitions)}
    reasons = sorted(dict(h)["cx.dlq.reason"].decode() for *_, h in sender.on(DLQ))
    assert reasons == ["invalid_json", "missing_identity"]
    assert sorted(r.reason for r in writer.rows["dead_letters"]) == ["invalid_json", "missing_identity"]
    assert pipe.metrics.touchpoints.labels("web")._value.get() == 2


async def test_stitch_agent_writes_rows_changelog_and_one_alert(pipeline: Any) -> None:
    pipe, sender, writer = pipeline
    strikes = [
        touchpoint("complaint_filed", identity={"customer_id": "C-3"}, context={"case_id": f"case-{i}"})
        for i in range(3)
    ]
    async with pipe.agents["ingest"].test_context() as ingest:
        for event in strikes:
            await ingest.put(fetched(pipe.app, TOUCHPOINTS, orjson.dumps(event)))
        await _settle(pipe)
    async with pipe.agents["stitch"].test_context() as stitch:
        for _, _, value, p, _ in sender.on(STITCH):
            await stitch.put(fetched(pipe.app, STITCH, value, partition=p))
        await _settle(pipe)

    assert {r.event_id for r in writer.rows["touchpoints"]} == {e["event_id"] for e in strikes}
    final = max(writer.rows["customer_experience"], key=lambda r: r.version)
    assert (final.customer_key, final.dissatisfied_90d, final.churn_risk) == ("C-3", 3, "high")
    assert len(writer.rows["churn_alerts"]) == 1
    assert sorted(writer.rows["churn_alerts"][0].experience_keys) == [
        "case:case-0",
        "case:case-1",
        "case:case-2",
    ]
    assert any(key == b"C-3" for _, key, *_ in sender.on(CHANGELOG))


async def test_identity_agent_publishes_each_link_keyed_in_kafka_s_default_partition(pipeline: Any) -> None:
    pipe, sender, writer = pipeline
    pipe.graph = IdentityGraph()
    pipe._graph_ready.set()
    logins = [
        touchpoint("login", identity={"customer_id": f"C-{n}", "anonymous_id": f"anon-{n}", "device_id": f"dev-{n}"})
        for n in range(12)
    ]
    async with pipe.agents["ingest"].test_context() as ingest:
        await ingest.put(fetched(pipe.app, TOUCHPOINTS, orjson.dumps({"events": logins})))
        await _settle(pipe)
    async with pipe.agents["identity"].test_context() as identity:
        await identity.put(fetched(pipe.app, CLAIMS, *(value for _, _, value, _, _ in sender.on(CLAIMS))))
        await _settle(pipe)

    links = sender.on(LINKS)
    expected = {f"{kind}:{prefix}-{n}" for n in range(12) for kind, prefix in (("anon", "anon"), ("device", "dev"))}
    assert {key.decode() for _, key, *_ in links} == expected
    for _, key, value, partition, _ in links:
        # Where a keyed send lands: compaction and the tombstones of `cxj forget` rely on it.
        assert partition == (murmur2(key) & 0x7FFFFFFF) % pipe.partitions
        assert orjson.loads(value)["customer_key"] == "C-" + key.decode().rsplit("-", 1)[1]
    assert {r.identifier for r in writer.rows["identity_links"]} == expected


class CrashingSender(MemorySender):
    """Delivers the first `limit` records, then the worker is gone: nothing after them lands."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit

    def _room(self, n: int) -> None:
        if len(self.sent) + n > self.limit:
            self.sent.extend([("<killed>", None, None, None, None)] * (self.limit - len(self.sent)))
            raise ConnectionError("killed")

    async def send(self, topic: str, value: bytes, **kw: Any) -> asyncio.Future[Any]:
        self._room(1)
        return await super().send(topic, value, **kw)

    async def send_many(self, topic: str, partition: int, records: Any) -> list[asyncio.Future[Any]]:
        records = list(records)
        self._room(len(records))  # one record batch: all of it lands or none
        return await super().send_many(topic, partition, records)


def _pipe(tmp_path: Path, sender: MemorySender, graph: IdentityGraph) -> Pipeline:
    settings = Settings(home=tmp_path, pii_secret="agent-test-secret-0123456789")  # type: ignore[arg-type]
    registry = CollectorRegistry()
    metrics = PipelineMetrics.create(registry)
    flusher = Flusher(MemoryWriter(), metrics, interval=3600)  # type: ignore[arg-type]
    pipe = Pipeline(create_app(settings), settings, sender, flusher, metrics, registry,  # type: ignore[arg-type]
                    replica=StaticReplica(), changelog_loader=_no_changelog)  # fmt: skip
    pipe.graph = graph
    pipe._graph_ready.set()
    return pipe


async def _arbitrate(pipe: Pipeline, claims: list[bytes]) -> None:
    async with pipe.agents["identity"].test_context() as identity:
        for value in claims:
            await identity.put(fetched(pipe.app, CLAIMS, value))
        await _settle(pipe)


def _graph(*senders: MemorySender) -> IdentityGraph:
    """What a restarted arbiter loads: the links that landed, in log order."""
    graph = IdentityGraph()
    graph.load((k.decode(), orjson.loads(v)["customer_key"] if v else None)
               for s in senders for t, k, v, _, _ in s.sent if t == LINKS and k)  # fmt: skip
    return graph


def _merges(sent: list[tuple[str, bytes | None, bytes | None, int | None, Any]]) -> set[tuple[str, str]]:
    return {(it.key, it.target) for t, _, v, _, _ in sent if t == STITCH and v for it in decode_items(v)
            if it.kind == "merge"}  # fmt: skip


async def test_an_arbiter_killed_mid_flush_still_merges_every_anonymous_state(tmp_path: Path) -> None:
    """Kill the arbiter after each delivered record of a flush; the restarted one rebuilds its graph from
    the links that landed and replays the unacknowledged claims: every merge of the undisturbed run
    is delivered in one of the two lives (links landing before their merges would strand the states)."""
    feeder = MemorySender()
    pipe = _pipe(tmp_path / "feed", feeder, IdentityGraph())
    # Anonymous visitors log in: each login claims the visitor's (anonymous) key for a customer.
    logins = [touchpoint("login", channel="wechat", identity={"customer_id": f"C-{n}", "wechat_openid": f"o-{n}"})
              for n in range(6)]  # fmt: skip
    async with pipe.agents["ingest"].test_context() as ingest:
        await ingest.put(fetched(pipe.app, TOUCHPOINTS, orjson.dumps({"events": logins})))
        await _settle(pipe)
    claims = [v for _, _, v, _, _ in feeder.on(CLAIMS) if v]

    undisturbed = MemorySender()
    await _arbitrate(_pipe(tmp_path / "calm", undisturbed, IdentityGraph()), claims)
    expected = _merges(undisturbed.sent)
    assert expected == {(f"~wechat:o-{n}", f"C-{n}") for n in range(6)}
    for limit in range(len(undisturbed.sent)):
        crashed = CrashingSender(limit)
        with pytest.raises(ConnectionError):
            await _arbitrate(_pipe(tmp_path / f"kill{limit}", crashed, IdentityGraph()), claims)
        replayed = MemorySender()
        await _arbitrate(_pipe(tmp_path / f"again{limit}", replayed, _graph(crashed)), claims)
        assert expected <= _merges(crashed.sent) | _merges(replayed.sent), f"killed after {limit} records"


@settings(max_examples=300, deadline=None)
@given(key=st.binary(max_size=40), partitions=st.integers(1, 64))
def test_the_core_partitions_a_keyed_record_as_kafka_s_default_partitioner(key: bytes, partitions: int) -> None:
    """Links go to the partition any Kafka client gives their key (aiokafka's murmur2 is the reference)."""
    assert kafka_partition(key, partitions) == (murmur2(key) & 0x7FFFFFFF) % partitions


async def test_an_agent_acks_a_fetch_only_once_its_outputs_are_flushed(pipeline: Any) -> None:
    pipe, sender, writer = pipeline
    _acking(pipe, TOUCHPOINTS)
    messages = fetched(pipe.app, TOUCHPOINTS, orjson.dumps(touchpoint("page_view")), b"{broken")
    async with pipe.agents["ingest"].test_context() as ingest:
        await ingest.put(messages)
        await asyncio.sleep(0.1)
        # Taken and pending: a rebalance waits for them (Faust's wait_empty), nothing acked yet.
        assert all(m.tracked and not m.acked for m in messages)
        assert set(messages) <= pipe.app.consumer._unacked_messages
        await pipe.flusher.flush()
    assert all(m.acked for m in messages)
    assert not any(m in pipe.app.consumer._unacked_messages for m in messages)
    assert sender.on(STITCH) and writer.rows["dead_letters"]


async def test_a_fetch_from_before_a_rebalance_is_dropped_unacked(pipeline: Any) -> None:
    """Messages of an earlier consumer generation belong to whoever owns the partition now."""
    pipe, sender, _writer = pipeline
    _acking(pipe, TOUCHPOINTS)
    stale = fetched(pipe.app, TOUCHPOINTS, orjson.dumps(touchpoint("page_view")))
    async with pipe.agents["ingest"].test_context() as ingest:
        pipe.app.consumer_generation_id += 1
        current = fetched(pipe.app, TOUCHPOINTS, orjson.dumps(touchpoint("login", identity={"customer_id": "C-9"})))
        await ingest.put(stale + current)
        await _settle(pipe)
    routed = [item for _, _, value, _, _ in sender.on(STITCH) for item in decode_items(value)]
    assert [it.key for it in routed] == ["C-9"]
    assert current[0].acked and not stale[0].acked and not stale[0].tracked


async def test_nothing_is_taken_while_a_rebalance_suspends_the_flow(pipeline: Any) -> None:
    pipe, _sender, _writer = pipeline
    async with pipe.agents["ingest"].test_context():
        pipe.app.flow_control.suspend()
        assert pipe.batches.take(fetched(pipe.app, TOUCHPOINTS, b"{}")) == []
        pipe.app.flow_control.resume()
        assert len(pipe.batches.take(fetched(pipe.app, TOUCHPOINTS, b"{}"))) == 1


async def test_a_record_without_a_value_on_the_touchpoints_topic_is_a_dead_letter(pipeline: Any) -> None:
    pipe, _sender, writer = pipeline
    (tombstone,) = fetched(pipe.app, TOUCHPOINTS, b"")
    tombstone.value = None
    async with pipe.agents["ingest"].test_context() as ingest:
        await ingest.put([tombstone])
        await _settle(pipe)
    assert [r.reason for r in writer.rows["dead_letters"]] == ["invalid_json"]
    assert tombstone.acked
