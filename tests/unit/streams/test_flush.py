"""The flush loop's cadence and what it reports."""

from __future__ import annotations

import asyncio
import threading
import time

from prometheus_client import CollectorRegistry

from sinks.writer import Batch
from streams.runtime.flush import Flusher
from streams.runtime.metrics import PipelineMetrics


class SlowWriter:
    """A ClickHouse that takes `seconds` per insert."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.started: list[float] = []

    def write(self, batch: Batch) -> dict[str, int]:
        self.started.append(time.monotonic())
        time.sleep(self.seconds)
        return {t: len(r) for t, r in batch.rows.items()}


async def test_flushes_start_one_interval_apart_however_long_the_insert_takes() -> None:
    registry = CollectorRegistry()
    writer = SlowWriter(0.3)
    flusher = Flusher(writer, PipelineMetrics.create(registry), interval=0.4)  # type: ignore[arg-type]
    flusher.start()

    async def feed() -> None:
        while True:
            flusher.add_rows({"touchpoints": [("row",)]})
            await asyncio.sleep(0.02)

    feeding = asyncio.get_running_loop().create_task(feed())
    await asyncio.sleep(2.1)
    feeding.cancel()
    await flusher.stop()
    gaps = [b - a for a, b in zip(writer.started, writer.started[1:], strict=False)]
    # Start to start: ~0.4 s apart. Waiting a full interval after each 0.3 s insert would make it 0.7 s.
    assert len(writer.started) >= 4, gaps
    assert sorted(gaps)[len(gaps) // 2] < 0.6, gaps
    observed = registry.get_sample_value("cx_flush_seconds_count")
    assert observed is not None and observed >= len(writer.started) - 1
    assert registry.get_sample_value("cx_flush_seconds_sum") >= 0.3 * (len(writer.started) - 1)  # type: ignore[operator]


async def test_one_changelog_record_per_touched_key_per_flush_after_the_rows() -> None:
    """Many takes touch a customer between flushes: the changelog gets its latest state once, after the rows."""
    registry = CollectorRegistry()
    order: list[str] = []

    class Writer:
        def write(self, batch: Batch) -> dict[str, int]:
            order.append("rows")
            return {t: len(r) for t, r in batch.rows.items()}

    sent: list[tuple[int, dict[str, bytes | None]]] = []

    async def send_changelog(partition: int, entries: dict[str, bytes | None]) -> list[asyncio.Future[None]]:
        order.append("changelog")
        sent.append((partition, dict(entries)))
        return []

    flusher = Flusher(Writer(), PipelineMetrics.create(registry), interval=3600,  # type: ignore[arg-type]
                      send_changelog=send_changelog)  # fmt: skip
    for take in range(5):  # five takes, each touching C1 and one other key
        flusher.add_rows({"customers": [("C1", take)]})
        flusher.add_changelog(3, {"C1": b"v%d" % take, f"K{take}": b"k"})
    flusher.add_changelog(4, {"C9": None})
    await flusher.flush()
    assert order == ["rows", "changelog", "changelog"]
    assert sent == [(3, {"C1": b"v4", "K0": b"k", "K1": b"k", "K2": b"k", "K3": b"k", "K4": b"k"}), (4, {"C9": None})]
    assert registry.get_sample_value("cx_changelog_records_total") == 7
    await flusher.flush()  # nothing pending: nothing sent again
    assert len(sent) == 2


async def test_forwarded_items_are_delivered_before_the_changelog_that_dropped_them() -> None:
    """A moved state leaves its partition's changelog only once the item carrying it has landed."""
    order: list[str] = []

    class Writer:
        def write(self, batch: Batch) -> dict[str, int]:
            return {}

    async def send_changelog(partition: int, entries: dict[str, bytes | None]) -> list[asyncio.Future[None]]:
        order.append("changelog")
        return []

    flusher = Flusher(Writer(), PipelineMetrics.create(CollectorRegistry()), interval=3600,  # type: ignore[arg-type]
                      send_changelog=send_changelog)  # fmt: skip
    forward: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    forward.add_done_callback(lambda _: order.append("forwarded"))
    flusher.add_futures([forward])
    flusher.add_changelog(2, {"~wechat:w1": None})
    flushing = asyncio.create_task(flusher.flush())
    await asyncio.sleep(0.05)
    assert order == []  # the changelog waits for the delivery
    forward.set_result(None)
    await flushing
    assert order == ["forwarded", "changelog"]


async def test_a_flush_frees_its_rows_in_the_writer_s_thread_once_stored() -> None:
    """The agents' loop never pays for freeing a flush's rows: the writer's thread lets go of them."""
    seen: list[tuple[int, str]] = []

    class Writer:
        def write(self, batch: Batch) -> dict[str, int]:
            seen.append((batch.count, threading.current_thread().name))
            return {t: len(r) for t, r in batch.rows.items()}

    cleared: list[str] = []

    class Tracked(Batch):
        def clear(self) -> None:
            cleared.append(threading.current_thread().name)
            super().clear()

    flusher = Flusher(Writer(), PipelineMetrics.create(CollectorRegistry()), interval=3600)  # type: ignore[arg-type]
    batch = flusher.pending.batch = Tracked()
    flusher.add_rows({"touchpoints": [("a",), ("b",)]})
    await flusher.flush()
    assert seen == [(2, seen[0][1])] and seen[0][1].startswith("clickhouse")
    assert cleared == [seen[0][1]]  # after the write, in the writer's thread
    assert (batch.count, batch.rows, batch.chunks) == (0, {}, {})
