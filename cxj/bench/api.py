"""`cxj bench api`: `cxj serve` on a private stack, on loopback (bounded: a few minutes).

- POST: simulator touchpoints in batches of 100 from a few concurrent clients; requests/s, touchpoints/s,
  p50/p99 per request and the service's CPU per touchpoint (/proc); afterwards the broker must hold one
  message per request answered 202 (nothing answered is lost).
- GET: 1,000,000 customers' rows generated inside ClickHouse (state, touchpoints, signals, journeys, links,
  alerts: the per-customer tables filled by their materialized views, as the writer's inserts fill them),
  then profiles of random customers, by key and by identifier; p50/p99.

The load runs in this process on the same two cores as the service, the broker and ClickHouse.
"""

from __future__ import annotations

import asyncio
import random
import statistics
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from cxj.bench.pipeline import _machine, process_cpu_seconds, reset_stack_data
from cxj.demo import ServiceProcess
from deploy.local.host import free_ports
from schemas.errors import StackError
from schemas.settings import Settings, load_settings

__all__ = ["ApiBenchConfig", "run_api_bench"]


@dataclass(frozen=True)
class ApiBenchConfig:
    post_requests: int = 3_000
    batch: int = 100
    post_concurrency: int = 16
    customers: int = 1_000_000
    touchpoints_per_customer: int = 3
    get_requests: int = 2_000
    get_concurrency: int = 4
    seed: int = 11


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


Request = tuple[str, str, bytes | None]  # method, path, body


async def _load(url: str, token: str, requests: Sequence[Request], concurrency: int) -> dict[str, Any]:
    """Send (method, path, body) requests from `concurrency` clients; latencies of the 2xx/404 answers."""
    import aiohttp

    latencies: list[float] = []
    codes: dict[str, int] = {}
    todo = iter(requests)
    headers = {"Authorization": f"Bearer {token}"}

    async def client(session: aiohttp.ClientSession) -> None:
        for method, path, body in todo:
            started = time.perf_counter()
            async with session.request(method, path, data=body) as answer:
                await answer.read()
                codes[str(answer.status)] = codes.get(str(answer.status), 0) + 1
                if answer.status < 300 or answer.status == 404:
                    latencies.append(time.perf_counter() - started)

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(base_url=url, headers=headers, connector=connector) as session:
        started = time.perf_counter()
        await asyncio.gather(*(client(session) for _ in range(concurrency)))
        seconds = time.perf_counter() - started
    return {"seconds": seconds, "codes": codes, "p50": _quantile(latencies, 0.5), "p99": _quantile(latencies, 0.99),
            "mean": statistics.fmean(latencies) if latencies else 0.0}  # fmt: skip


def _bodies(cfg: ApiBenchConfig, settings: Settings) -> list[bytes]:
    from cxj.simulate import SimulationConfig, generate

    sim = SimulationConfig(seed=cfg.seed, customers=20_000, events=cfg.post_requests * cfg.batch, days=30.0,
                           now=datetime.now(UTC), invalid_share=0.0, region=settings.default_region)  # fmt: skip
    events = [orjson.dumps(e) for e in generate(sim)]
    return [b'{"events":[' + b",".join(events[i : i + cfg.batch]) + b"]}" for i in range(0, len(events), cfg.batch)]


def _messages_on_topic(settings: Settings) -> int:
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, **settings.kafka_client_options())
    try:
        parts = [TopicPartition("cx.touchpoints", p) for p in consumer.partitions_for_topic("cx.touchpoints") or ()]
        return int(sum(consumer.end_offsets(parts).values()))
    finally:
        consumer.close()


def _fill_customers(settings: Settings, cfg: ApiBenchConfig) -> dict[str, int]:
    """`cfg.customers` customers' rows, written by ClickHouse itself (the views fill the per-customer tables)."""
    from sinks.clickhouse import ClickHouse

    ch = ClickHouse(settings.clickhouse_schema_admin, send_timeout=600)
    db, n, per = settings.clickhouse.database, cfg.customers, cfg.touchpoints_per_customer
    t0 = int(time.time()) - 30 * 86_400
    key = "concat('C-', toString(c))"
    statements = [
        f"INSERT INTO {db}.customer_experience SELECT {key}, c % 4, c % 3, -10.0 * (c % 4), "
        "arrayElement(['none', 'low', 'elevated', 'high'], (c % 4) + 1), "
        f"toDateTime({t0} + c % 2592000), 1, (c % 500) * 1.5, c % 5, 1, '', now() "
        f"FROM (SELECT number AS c FROM numbers({n}))",
        f"INSERT INTO {db}.touchpoints (event_id, customer_key, channel, event_type, occurred_at, occurred_ms, "
        "received_at, source, experience_key, journey_id, signals, customer_id, schema_version) "
        f"SELECT concat('e-', toString(number)), concat('C-', toString(number % {n})), "
        "arrayElement(['web', 'app', 'phone', 'chat', 'wechat', 'store'], (number % 6) + 1), 'contact_ended', "
        f"toDateTime({t0} + number % 2592000), ({t0} + number % 2592000) * 1000, now(), 'bench', "
        f"concat('contact:k', toString(number)), concat('service:contact:k', toString(number), '@C-', "
        f"toString(number % {n})), if(number % 4 = 0, ['long_wait'], emptyArrayString()), "
        f"concat('C-', toString(number % {n})), 1 "
        f"FROM numbers({n * per})",
        f"INSERT INTO {db}.experience_signals SELECT concat('e-', toString(number)), "
        f"concat('C-', toString(number % {n})), concat('contact:k', toString(number)), 'long_wait', -1, 'respect', "
        f"'phone', 'contact_ended', toDateTime({t0} + number % 2592000), concat('service:contact:k', "
        f"toString(number), '@C-', toString(number % {n})), now() FROM numbers({n * per}) WHERE number % 4 = 0",
        f"INSERT INTO {db}.journeys SELECT concat('service:contact:k', toString(number), '@C-', "
        f"toString(number % {n})), concat('C-', toString(number % {n})), 'service', "
        "if(number % 3 = 0, 'open', 'completed'), "
        f"toDateTime({t0} + number % 2592000), NULL, toDateTime({t0} + number % 2592000), 1, ['phone'], "
        f"number % 4 = 0, '', 1, now() FROM numbers({n * per})",
        f"INSERT INTO {db}.identity_links SELECT concat('anon:a', toString(number)), 'anon', "
        f"concat('C-', toString(number)), '', toDateTime({t0}), concat('e-', toString(number)), 1 "
        f"FROM numbers({n})",
        f"INSERT INTO {db}.churn_alerts (alert_id, customer_key, level, previous_level, dissatisfied_90d, "
        "experience_keys, signals, dimensions, triggered_at, lifetime_value, emitted_at, actions, action_texts) "
        f"SELECT concat('alert-', toString(c)), {key}, 'high', 'elevated', 3, "
        f"['contact:k1', 'contact:k2', 'contact:k3'], ['long_wait'], ['respect'], toDateTime({t0} + c % 2592000), "
        "0.0, now(), ['personal_callback'], ['Call the customer back personally'] "
        f"FROM (SELECT number * 25 AS c FROM numbers({n // 25}))",
    ]
    for sql in statements:
        ch.execute(sql)
    rows = {t: int(ch.execute(f"SELECT count() FROM {db}.{t}")[0][0])
            for t in ("customer_experience", "touchpoints", "touchpoints_by_customer", "signals_by_customer",
                      "journeys_by_customer", "identity_links", "churn_alerts")}  # fmt: skip
    ch.close()
    return rows


def run_api_bench(base: Settings, cfg: ApiBenchConfig, log: Any = print) -> dict[str, Any]:
    """POST and GET figures of one `cxj serve` process on a private stack under `<home>/bench-api`."""
    from deploy.local.stack import LocalStack

    home = (base.home / "bench-api").resolve()
    kafka, ch, ch_http, prom, am, api = free_ports(6)
    settings = load_settings(home=home, kafka_port=kafka, clickhouse_port=ch, clickhouse_http_port=ch_http,
                             prometheus_port=prom, alertmanager_port=am, api_port=api)  # fmt: skip
    stack = LocalStack(settings)
    stack.down()
    stack.up(["kafka", "clickhouse"])
    settings = load_settings(home=home)
    if settings.api_token is None:
        raise StackError(f"{home}/stack.env has no CXJ_API_TOKEN")
    token = settings.api_token.get_secret_value()
    service = ServiceProcess(settings, port=api)
    try:
        reset_stack_data(stack, settings)
        bodies = _bodies(cfg, settings)
        service.start()
        assert service.proc is not None
        url = service.url
        warm = [("POST", "/v1/touchpoints", b) for b in bodies[:100]]
        asyncio.run(_load(url, token, warm, cfg.post_concurrency))
        sent_before = _messages_on_topic(settings)
        cpu = process_cpu_seconds(service.proc.pid)
        post = asyncio.run(_load(url, token, [("POST", "/v1/touchpoints", b) for b in bodies], cfg.post_concurrency))
        post_cpu = process_cpu_seconds(service.proc.pid) - cpu
        on_topic = _messages_on_topic(settings) - sent_before
        accepted = post["codes"].get("202", 0)
        if on_topic != accepted:
            raise StackError(f"{accepted:,} requests answered 202 but {on_topic:,} messages reached cx.touchpoints")
        touchpoints = accepted * cfg.batch
        log(f"  POST: {accepted / post['seconds']:,.0f} requests/s, {touchpoints / post['seconds']:,.0f} "
            f"touchpoints/s, p50 {post['p50'] * 1000:.1f} ms, p99 {post['p99'] * 1000:.1f} ms, "
            f"{post_cpu / touchpoints * 1e6:.1f} us service CPU per touchpoint")  # fmt: skip

        log(f"  filling ClickHouse with {cfg.customers:,} customers' rows ...")
        filled_at = time.monotonic()
        rows = _fill_customers(settings, cfg)
        fill_seconds = time.monotonic() - filled_at
        rng = random.Random(cfg.seed)
        paths = [f"/v1/customers/C-{rng.randrange(cfg.customers)}" if i % 2 else
                 f"/v1/customers/anon:a{rng.randrange(cfg.customers)}" for i in range(cfg.get_requests)]  # fmt: skip
        asyncio.run(_load(url, token, [("GET", p, None) for p in paths[:50]], cfg.get_concurrency))
        pids = {"service": service.proc.pid, "clickhouse": stack._our_pid("clickhouse") or "self"}
        cpu_before = {name: process_cpu_seconds(pid) for name, pid in pids.items()}
        get = asyncio.run(_load(url, token, [("GET", p, None) for p in paths], cfg.get_concurrency))
        for name, pid in pids.items():
            get[f"{name}_cpu_ms"] = (process_cpu_seconds(pid) - cpu_before[name]) / cfg.get_requests * 1000
        one = asyncio.run(_load(url, token, [("GET", p, None) for p in paths[: cfg.get_requests // 4]], 1))
        get["one_client"] = {"p50": one["p50"], "p99": one["p99"]}
        if get["codes"].get("200", 0) != cfg.get_requests:
            raise StackError(f"profiles of generated customers not all found: {get['codes']}")
        log(f"  GET ({rows['customer_experience']:,} customers, {rows['touchpoints']:,} touchpoints): "
            f"{cfg.get_requests / get['seconds']:,.0f} requests/s from {cfg.get_concurrency} clients, p50 "
            f"{get['p50'] * 1000:.1f} ms, p99 {get['p99'] * 1000:.1f} ms (one client: p50 {one['p50'] * 1000:.1f} ms, "
            f"p99 {one['p99'] * 1000:.1f} ms); CPU per profile: service {get['service_cpu_ms']:.1f} ms, "
            f"ClickHouse {get['clickhouse_cpu_ms']:.1f} ms")  # fmt: skip
    finally:
        service.stop()
        stack.down()
    return {
        "machine": _machine(),
        "config": asdict(cfg),
        "post": {**post, "requests_per_second": accepted / post["seconds"],
                 "touchpoints_per_second": touchpoints / post["seconds"],
                 "cpu_us_per_touchpoint": post_cpu / touchpoints * 1e6, "messages_on_topic": on_topic},
        "get": {**get, "requests_per_second": cfg.get_requests / get["seconds"], "rows": rows,
                "fill_seconds": fill_seconds},
    }  # fmt: skip
