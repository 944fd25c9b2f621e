"""The composition root of a worker: settings in, a runnable Faust app with its pipeline out."""

from __future__ import annotations

import faust
from prometheus_client import CollectorRegistry

from cxj.settings import Settings
from sinks.clickhouse import ClickHouse
from sinks.writer import ClickHouseWriter
from streams.agents import Pipeline
from streams.app import create_app
from streams.flush import Flusher
from streams.metrics import Metrics
from streams.producer import BatchProducer

__all__ = ["build_worker", "run_worker"]


def build_worker(settings: Settings, registry: CollectorRegistry | None = None) -> tuple[faust.App, Pipeline]:
    settings.require_pii_secret()
    (settings.home / "worker").mkdir(parents=True, exist_ok=True)
    registry = registry or CollectorRegistry()
    metrics = Metrics.create(registry)
    app = create_app(settings)
    writer = ClickHouseWriter(ClickHouse(settings.clickhouse), metrics, max_backoff=settings.sink_retry_max_seconds)

    async def crash(exc: BaseException) -> None:
        await app.crash(exc)

    flusher = Flusher(
        writer, metrics, interval=settings.sink_flush_seconds, max_rows=settings.sink_max_rows, on_error=crash
    )
    pipeline = Pipeline(app, settings, BatchProducer(settings), flusher, metrics, registry)
    return app, pipeline


def run_worker(settings: Settings, *, loglevel: str = "warn") -> None:
    """Run until stopped (SIGTERM/SIGINT): the `cxj worker` command."""
    app, _pipeline = build_worker(settings)
    worker = faust.Worker(app, loglevel=loglevel, quiet=True)
    worker.execute_from_commandline()
