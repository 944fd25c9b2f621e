"""The flush loop's cadence and what it reports."""

from __future__ import annotations

import asyncio
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
