"""The commit protocol: rows to ClickHouse, then Kafka writes, then acks — once a second."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from sinks.writer import Batch, ClickHouseWriter
from streams.runtime.metrics import PipelineMetrics

__all__ = ["Flusher", "Pending"]

log = logging.getLogger(__name__)

Ack = Callable[[], Awaitable[Any]]
Send = Callable[[], Awaitable[list[asyncio.Future[Any]]]]
# Writes one partition's changelog records (key -> serialized state, None deletes it); returns their futures.
ChangelogSend = Callable[[int, dict[str, bytes | None]], Awaitable[list[asyncio.Future[Any]]]]


@dataclass(slots=True)
class Pending:
    """What one flush makes durable, in order: rows, then sends, then acks."""

    batch: Batch = field(default_factory=Batch)
    sends: list[Send] = field(default_factory=list)
    futures: list[asyncio.Future[Any]] = field(default_factory=list)
    acks: list[Ack] = field(default_factory=list)
    received_ms: list[int] = field(default_factory=list)
    # partition -> key -> its latest state: one changelog record per touched customer per flush, however
    # many takes touched it in between.
    changelog: dict[int, dict[str, bytes | None]] = field(default_factory=dict)


class Flusher:
    """Buffers everything the agents produce and makes it durable before offsets move.

    Order per flush: insert every table (retrying through outages), then the Kafka writes that
    depend on those rows (re-routed items delivered, then the changelog, alerts), then the acks
    that let Faust commit the input offsets. A crash anywhere replays input whose effects are
    idempotent, and never leaves a moved state in neither place.
    """

    def __init__(
        self,
        writer: ClickHouseWriter,
        metrics: PipelineMetrics,
        *,
        interval: float = 1.0,
        max_rows: int = 100_000,
        clock: Callable[[], float] = time.time,
        on_error: Callable[[BaseException], Awaitable[Any]] | None = None,
        send_changelog: ChangelogSend | None = None,
    ) -> None:
        self.writer = writer
        self.metrics = metrics
        self.interval = interval
        self.max_rows = max_rows
        self.clock = clock
        self.on_error = on_error
        self.send_changelog = send_changelog  # set by the pipeline, which owns the producer
        self.pending = Pending()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="clickhouse")
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self.flushes = 0

    # --- producers of work ---------------------------------------------------------------------

    def add_rows(self, rows: Mapping[Any, Sequence[tuple[Any, ...]]]) -> None:
        self.pending.batch.extend(rows)
        if self.pending.batch.count >= self.max_rows:
            self._wake.set()

    def add_changelog(self, partition: int, changed: dict[str, bytes | None]) -> None:
        """States to write to the changelog after this flush's rows; a later state of a key replaces an earlier."""
        self.pending.changelog.setdefault(partition, {}).update(changed)

    def add_send(self, send: Send) -> None:
        self.pending.sends.append(send)

    def add_futures(self, futures: list[asyncio.Future[Any]]) -> None:
        self.pending.futures.extend(futures)

    def add_ack(self, ack: Ack) -> None:
        self.pending.acks.append(ack)

    def add_received(self, received_ms: list[int]) -> None:
        self.pending.received_ms.extend(received_ms)

    async def backpressure(self) -> None:
        """Hold an agent while a full buffer waits for a flush (e.g. ClickHouse is down)."""
        while self.pending.batch.count >= self.max_rows:
            self._wake.set()
            await asyncio.sleep(0.05)

    # --- the flush loop ------------------------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
        await self.flush()
        self._executor.shutdown(wait=False)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        started = loop.time()
        while True:
            # One flush per interval, start to start: a slow flush does not stretch the next wait.
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=max(0.0, started + self.interval - loop.time()))
            except TimeoutError:
                pass
            self._wake.clear()
            started = loop.time()
            try:
                await self.flush()
            except Exception as exc:
                # Not an outage (those are retried inside): a bug or a rejected row. Stop the
                # worker rather than commit past data that was not written.
                log.exception("flush failed; stopping the worker")
                if self.on_error is not None:
                    await self.on_error(exc)
                raise

    def _store(self, batch: Batch) -> None:
        """In the writer's thread: insert the batch, then free its rows there."""
        self.writer.write(batch)
        batch.clear()

    async def flush(self) -> None:
        async with self._lock:
            work, self.pending = self.pending, Pending()
            if not (work.batch.count or work.sends or work.futures or work.acks or work.changelog):
                return
            self.metrics.flush_pending_rows.set(work.batch.count)
            # Kafka sends issued by agents (stage outputs) must land before their acks too.
            loop = asyncio.get_running_loop()
            began = self.clock()
            if work.batch.count:
                await loop.run_in_executor(self._executor, self._store, work.batch)
            self.metrics.event_to_sink_lag.observe_flush(int(self.clock() * 1000), work.received_ms)
            # The items the stages forwarded (moved states above all) are delivered before the changelog
            # that no longer holds them: a kill in between must leave a state in one place at least.
            if work.futures:
                await asyncio.gather(*work.futures)
            futures: list[asyncio.Future[Any]] = []
            if work.changelog:
                if self.send_changelog is None:
                    raise RuntimeError("changelog states pending but no changelog sender was set")
                for partition, entries in work.changelog.items():
                    futures.extend(await self.send_changelog(partition, entries))
                    self.metrics.changelog_records.inc(len(entries))
            for send in work.sends:
                futures.extend(await send())
            if futures:
                await asyncio.gather(*futures)
            for ack in work.acks:
                await ack()
            self.metrics.flush_seconds.observe(self.clock() - began)
            self.flushes += 1
            self.metrics.flush_pending_rows.set(self.pending.batch.count)
