"""End-to-end throughput, latency and memory of the pipeline on a private local stack (`cxj bench pipeline`).

Each scenario starts from nothing: the broker is emptied (`LocalStack.reset_kafka`), the database is
recreated, N touchpoints from `cxj simulate` are preloaded, then the workers start and the clock runs until
the consumer group has committed every input offset, which the worker does only after every derived row is
in ClickHouse. The same run measures the raw aiokafka consume + orjson decode rate of the preloaded topic, so
the ratio shows what the pipeline costs over reading bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from cxj.demo import WorkerProcess, wait_drained
from cxj.simulate import SimulationConfig, generate_raw, produce
from deploy.local.host import free_ports
from schemas.errors import StackError
from schemas.settings import ClickHouseDSN, Settings, load_settings

__all__ = ["PipelineBenchConfig", "Scenario", "reset_stack_data", "run_pipeline_bench"]


@dataclass(frozen=True)
class Scenario:
    name: str
    events: int
    customers: int
    batch_size: int
    workers: int = 1
    rate: float | None = None  # None: preload everything first; else produce at this rate while running
    seconds: float | None = None  # with `rate`: how long to produce


@dataclass(frozen=True)
class PipelineBenchConfig:
    events: int = 500_000
    customers: int = 50_000
    big_customers: int = 1_000_000
    latency_rate: float = 5_000.0
    latency_seconds: float = 30.0
    latency_batch: int = 50
    high_latency_rate: float = 20_000.0  # the second point (one worker takes about 25,000 here)
    seed: int = 11
    only: tuple[str, ...] = ()  # scenario names to run (all when empty)
    timeout: float = 1800.0
    peer: bool = True  # Quix Streams on the one-worker throughput scenarios' topic (cxj/bench/peer.py)

    def scenarios(self) -> list[Scenario]:
        all_ = [
            Scenario("batched x500, 1 worker", self.events, self.customers, 500),
            Scenario("single events, 1 worker", self.events, self.customers, 1),
            Scenario("batched x500, 2 workers", self.events, self.customers, 500, workers=2),
            Scenario("single events, 2 workers", self.events, self.customers, 1, workers=2),
            Scenario(f"latency at {self.latency_rate:,.0f} events/s", int(self.latency_rate * self.latency_seconds),
                     self.customers, self.latency_batch, rate=self.latency_rate, seconds=self.latency_seconds),
            Scenario(f"latency at {self.high_latency_rate:,.0f} events/s",
                     int(self.high_latency_rate * self.latency_seconds), self.customers, self.latency_batch,
                     rate=self.high_latency_rate, seconds=self.latency_seconds),
            Scenario(f"{self.big_customers:,} customers, batched x500", self.big_customers, self.big_customers, 500),
        ]  # fmt: skip
        return [s for s in all_ if not self.only or any(o in s.name for o in self.only)]


@dataclass
class Result:
    scenario: Scenario
    events_sent: int = 0
    produce_eps: float = 0.0
    raw_consume_eps: float = 0.0
    seconds: float = 0.0
    end_to_end_eps: float = 0.0
    ratio_to_raw: float = 0.0
    touchpoints_in_clickhouse: int = 0
    dead_letters_in_clickhouse: int = 0
    peak_rss_mb: list[float] = field(default_factory=list)
    state_customers: int = 0
    state_bytes: int = 0
    startup_seconds: float = 0.0  # from starting the workers to the first touchpoint ingested
    steady_eps: float = 0.0  # events / (drained - first touchpoint ingested)
    latency_p50: float | None = None
    latency_p99: float | None = None
    flush_p50: float | None = None  # one flush: every table, then the Kafka writes, then the acks
    flush_p99: float | None = None
    # Mean seconds of one insert, by table, over the latency window (what a flush spends in ClickHouse).
    insert_seconds: dict[str, float] = field(default_factory=dict)
    # Worker process CPU (all threads, /proc/<pid>/stat) over touchpoints: from the first touchpoint
    # ingested to drained, and from process start (start-up, group join and recovery included).
    cpu_us_per_touchpoint: float = 0.0
    cpu_us_per_touchpoint_total: float = 0.0
    # The peer on the same preloaded topic right after: touchpoints/s first message to last, its CPU.
    peer_eps: float = 0.0
    peer_cpu_us_per_touchpoint: float = 0.0
    ratio_to_peer: float = 0.0  # our steady events/s over the peer's

    @property
    def state_bytes_per_customer(self) -> float:
        return self.state_bytes / self.state_customers if self.state_customers else 0.0

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["state_bytes_per_customer"] = round(self.state_bytes_per_customer, 1)
        return out


# --- measuring helpers -------------------------------------------------------------------------


def _metrics_text(port: int) -> str:
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        return str(resp.read().decode())


def _samples(text: str, name: str) -> Iterator[tuple[str, float]]:
    for line in text.splitlines():
        if line.startswith(name):
            series, value = line.rsplit(" ", 1)
            yield series, float(value)


def _gauge(text: str, name: str) -> float:
    return sum(v for s, v in _samples(text, name) if s == name or s.startswith(name + "{"))


def _buckets(text: str, name: str) -> dict[float, float]:
    out: dict[float, float] = {}
    for series, value in _samples(text, name + "_bucket"):
        le = series.split('le="', 1)[1].split('"', 1)[0]
        bound = float("inf") if le == "+Inf" else float(le)
        out[bound] = out.get(bound, 0.0) + value
    return out


def quantile(buckets: dict[float, float], q: float) -> float | None:
    """Prometheus-style histogram_quantile over cumulative buckets (linear within a bucket)."""
    bounds = sorted(buckets)
    if not bounds or buckets[bounds[-1]] <= 0:
        return None
    rank = q * buckets[bounds[-1]]
    lower, below = 0.0, 0.0
    for bound in bounds:
        count = buckets[bound]
        if count >= rank:
            if bound == float("inf"):
                return lower
            inside = count - below
            return lower + (bound - lower) * ((rank - below) / inside if inside else 1.0)
        lower, below = bound, count
    return lower


def _delta_buckets(before: list[str], after: list[str], name: str) -> dict[float, float]:
    """A histogram's buckets summed over workers, counting only what was observed in between."""
    delta: dict[float, float] = {}
    for b_text, a_text in zip(before, after, strict=True):
        b = _buckets(b_text, name)
        for bound, count in _buckets(a_text, name).items():
            delta[bound] = delta.get(bound, 0.0) + count - b.get(bound, 0.0)
    return delta


def _mean_by_table(before: list[str], after: list[str], name: str) -> dict[str, float]:
    """A histogram's mean by its `table` label, over what was observed in between (all workers)."""
    sums: dict[str, list[float]] = {}
    for sign, texts in ((-1.0, before), (1.0, after)):
        for text in texts:
            for series, value in _samples(text, name):
                kind = (
                    "sum" if series.startswith(name + "_sum") else "count" if series.startswith(name + "_count") else ""
                )
                if kind and 'table="' in series:
                    table = series.split('table="', 1)[1].split('"', 1)[0]
                    slot = sums.setdefault(table, [0.0, 0.0])
                    slot[0 if kind == "sum" else 1] += sign * value
    return {t: round(total / n, 4) for t, (total, n) in sorted(sums.items()) if n > 0}


def _wait_assigned(workers: list[WorkerProcess], partitions: int, deadline: float) -> None:
    """Until the workers together hold every touchpoints and stitch partition."""
    from streams.runtime.topics import STITCH, TOUCHPOINTS

    while time.monotonic() < deadline:
        held = {TOUCHPOINTS: 0.0, STITCH: 0.0}
        for w in workers:
            for series, value in _samples(_metrics_text(w.web_port), "cx_assigned_partitions"):
                for topic in held:
                    if f'topic="{topic}"' in series:
                        held[topic] += value
        if all(n >= partitions for n in held.values()):
            return
        time.sleep(0.1)
    raise TimeoutError("the workers were not assigned every partition before the timeout")


def _first_touchpoint(workers: list[WorkerProcess], deadline: float) -> float:
    """When a worker first reports an ingested touchpoint (polled every 50 ms)."""
    while time.monotonic() < deadline:
        for w in workers:
            try:
                if _gauge(_metrics_text(w.web_port), "cx_touchpoints_total") > 0:
                    return time.monotonic()
            except OSError:
                pass  # not listening yet
        time.sleep(0.05)
    raise TimeoutError("no worker ingested a touchpoint before the timeout")


def status_mb(field: str, pid: int | str = "self") -> float:
    """A memory figure of /proc/<pid>/status (VmRSS, VmHWM …) in MB; 0 when absent."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


def process_cpu_seconds(pid: int | str = "self") -> float:
    """User plus system CPU seconds of a process, all its threads (/proc/<pid>/stat fields 14 and 15)."""
    import os

    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _raw_consume_rate(settings: Settings, expected_messages: int, batched: bool) -> tuple[int, float]:
    """aiokafka getmany + orjson decode of every touchpoint on cx.touchpoints: (events, seconds)."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, enable_auto_commit=False,
                                max_partition_fetch_bytes=8 * 2**20, fetch_max_bytes=64 * 2**20,
                                **settings.aiokafka_options())  # fmt: skip
    await consumer.start()
    try:
        # The count `cxj init` created (an unassigned consumer's metadata knows no topic yet).
        tps = [TopicPartition("cx.touchpoints", p) for p in range(settings.topic_partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        messages = events = 0
        started = time.perf_counter()
        while messages < expected_messages:
            batch = await consumer.getmany(timeout_ms=1000, max_records=10_000)
            if not batch:
                break
            for records in batch.values():
                for record in records:
                    messages += 1
                    with contextlib.suppress(orjson.JSONDecodeError):
                        doc = orjson.loads(record.value)
                        events += len(doc["events"]) if batched and isinstance(doc, dict) and "events" in doc else 1
        return events, time.perf_counter() - started
    finally:
        await consumer.stop()


# --- the run -----------------------------------------------------------------------------------


def reset_stack_data(stack: Any, settings: Settings) -> None:
    """An empty broker (its log removed and formatted again) and a fresh database, then topics and schema."""
    from sinks.clickhouse import ClickHouse
    from sinks.migrate import migrate
    from streams.runtime.topics import create_topics

    stack.reset_kafka()
    create_topics(settings)
    admin = settings.clickhouse_admin
    boot = ClickHouse(ClickHouseDSN(admin.host, admin.port, admin.user, admin.password, "default"))
    boot.execute(f"DROP DATABASE IF EXISTS {settings.clickhouse.database}")
    boot.execute(f"CREATE DATABASE {settings.clickhouse.database}")
    boot.close()
    migrate(ClickHouse(settings.clickhouse_schema_admin))


def _count(settings: Settings, sql: str) -> int:
    from sinks.clickhouse import ClickHouse

    ch = ClickHouse(settings.clickhouse)
    try:
        return int(ch.query(sql)[0][0])
    finally:
        ch.close()


def _run_scenario(stack: Any, settings: Settings, sc: Scenario, cfg: PipelineBenchConfig, log: Any) -> Result:
    result = Result(sc)
    reset_stack_data(stack, settings)
    sim = SimulationConfig(seed=cfg.seed, customers=sc.customers, events=sc.events, days=60.0,
                           now=datetime.now(UTC), invalid_share=0.01, region=settings.default_region)  # fmt: skip
    workers = [WorkerProcess(settings, name=f"bench-worker-{i}", web_port=port)
               for i, port in enumerate(free_ports(sc.workers))]  # fmt: skip
    if sc.rate is None:
        log(f"  preloading {sc.events:,} touchpoints (batch {sc.batch_size}) …")
        stats = produce(settings, generate_raw(sim), batch_size=sc.batch_size, total=sc.events)
        result.events_sent, result.produce_eps = stats.sent_events, stats.events_per_second
        events, seconds = asyncio.run(_raw_consume_rate(settings, stats.sent_messages, sc.batch_size > 1))
        result.raw_consume_eps = events / seconds if seconds else 0.0
        log(f"  raw aiokafka consume+decode: {result.raw_consume_eps:,.0f} events/s; starting {sc.workers} worker(s)")
        started = time.monotonic()
        for w in workers:
            w.start()
        try:
            first = _first_touchpoint(workers, started + cfg.timeout)
            cpu_first = sum(process_cpu_seconds(w.proc.pid) for w in workers if w.proc is not None)
            finished = wait_drained(settings, cfg.timeout, settle=0.5)
            cpu_end = sum(process_cpu_seconds(w.proc.pid) for w in workers if w.proc is not None)
            result.cpu_us_per_touchpoint = (cpu_end - cpu_first) / result.events_sent * 1e6
            result.cpu_us_per_touchpoint_total = cpu_end / result.events_sent * 1e6
            result.seconds = finished - started
            result.end_to_end_eps = result.events_sent / result.seconds
            # Process start, group join and recovery are a fixed cost, whatever the backlog.
            result.startup_seconds = first - started
            result.steady_eps = result.events_sent / (finished - first)
            result.ratio_to_raw = result.end_to_end_eps / result.raw_consume_eps if result.raw_consume_eps else 0.0
            _collect_worker_figures(result, workers)
        finally:
            for w in workers:
                w.stop()
        if cfg.peer and sc.workers == 1 and sc.events == cfg.events:
            from cxj.bench.peer import run_peer

            log("  the peer, Quix Streams, counting the same touchpoints per customer …")
            peer = run_peer(settings.kafka_bootstrap, "cx.touchpoints", result.events_sent, timeout=cfg.timeout)
            result.peer_eps, result.peer_cpu_us_per_touchpoint = peer.eps, peer.cpu_us_per_touchpoint
            result.ratio_to_peer = result.steady_eps / peer.eps if peer.eps else 0.0
    else:
        for w in workers:
            w.start()
        try:
            # Latency of a running pipeline: the traffic starts once the group has assigned every partition.
            _wait_assigned(workers, settings.topic_partitions, time.monotonic() + cfg.timeout)
            before = [_metrics_text(w.web_port) for w in workers]
            log(f"  producing {sc.rate:,.0f} events/s for {sc.seconds:.0f} s (batch {sc.batch_size}) …")
            stats = produce(settings, generate_raw(replace(sim, invalid_share=0.0)), rate=sc.rate,
                            batch_size=sc.batch_size, total=sc.events)  # fmt: skip
            result.events_sent, result.produce_eps = stats.sent_events, stats.events_per_second
            wait_drained(settings, cfg.timeout, settle=0.5)
            time.sleep(1.0)
            after = [_metrics_text(w.web_port) for w in workers]
            lag = _delta_buckets(before, after, "cx_event_to_sink_lag_seconds")
            result.latency_p50, result.latency_p99 = quantile(lag, 0.5), quantile(lag, 0.99)
            flushes = _delta_buckets(before, after, "cx_flush_seconds")
            result.flush_p50, result.flush_p99 = quantile(flushes, 0.5), quantile(flushes, 0.99)
            result.insert_seconds = _mean_by_table(before, after, "cx_sink_batch_seconds")
            _collect_worker_figures(result, workers)
        finally:
            for w in workers:
                w.stop()
    result.touchpoints_in_clickhouse = _count(settings, "SELECT count() FROM {db}.touchpoints FINAL")
    result.dead_letters_in_clickhouse = _count(settings, "SELECT count() FROM {db}.dead_letters")
    return result


def _collect_worker_figures(result: Result, workers: list[WorkerProcess]) -> None:
    for w in workers:
        assert w.proc is not None
        text = _metrics_text(w.web_port)
        result.state_customers += int(_gauge(text, "cx_state_customers"))
        result.state_bytes += int(_gauge(text, "cx_state_bytes"))
        result.peak_rss_mb.append(round(status_mb("VmHWM", w.proc.pid), 1))


def run_pipeline_bench(base: Settings, cfg: PipelineBenchConfig, log: Any = print) -> dict[str, Any]:
    """Run every scenario on a private stack under `<home>/bench`; returns the figures."""
    from deploy.local.stack import LocalStack

    home = (base.home / "bench").resolve()
    kafka, ch, ch_http, prom, am = free_ports(5)
    settings = load_settings(home=home, kafka_port=kafka, clickhouse_port=ch, clickhouse_http_port=ch_http,
                             prometheus_port=prom, alertmanager_port=am)  # fmt: skip
    stack = LocalStack(settings)
    stack.down()
    stack.up(["kafka", "clickhouse"])
    settings = load_settings(home=home)
    results = []
    try:
        for sc in cfg.scenarios():
            log(f"[bold]{sc.name}[/]")
            r = _run_scenario(stack, settings, sc, cfg, log)
            log(f"  {r.end_to_end_eps:,.0f} events/s end to end, {r.steady_eps:,.0f} after "
                f"{r.startup_seconds:.1f} s of start-up, {r.cpu_us_per_touchpoint:.1f} us worker CPU per touchpoint"
                + (f"; peer {r.peer_eps:,.0f} events/s ({r.peer_cpu_us_per_touchpoint:.1f} us), x{r.ratio_to_peer:.2f}"
                   if r.peer_eps else "") if sc.rate is None else
                f"  latency p50 {r.latency_p50:.2f} s, p99 {r.latency_p99:.2f} s; "
                f"one flush p50 {r.flush_p50:.2f} s, p99 {r.flush_p99:.2f} s; one insert (ms): "
                + ", ".join(f"{t} {v * 1000:.0f}" for t, v in r.insert_seconds.items()))  # fmt: skip
            results.append(r)
    except StackError:
        raise
    finally:
        stack.down()
    return {
        "machine": _machine(),
        "config": asdict(cfg),
        "results": [r.as_dict() for r in results],
    }


def _machine() -> dict[str, Any]:
    import os
    import platform

    return {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()}
