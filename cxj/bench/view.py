"""The cost of `touchpoints_resolved` on 1,000,000 touchpoints, against the alternatives (`cxj bench view`).

Touchpoints keep the key they were stitched to at ingest; the view resolves only the keys that moved later,
through the small `identity_overrides` table (PostHog's person_distinct_id_overrides idea). The naive
alternative joins every touchpoint against every identifier ever linked (`identity_links`), whose right side
grows with all identifiers, not with merges. This benchmark fills a scratch database (`cx_bench`) with
synthetic rows generated inside ClickHouse, runs each query three times, and reads duration, memory and rows
read from `system.query_log`.
"""

from __future__ import annotations

import statistics
import time
import uuid
from dataclasses import asdict, dataclass
from typing import Any

from schemas.settings import ClickHouseDSN, Settings
from sinks.clickhouse import ClickHouse
from sinks.migrate import migrate

__all__ = ["QueryCost", "ViewBenchConfig", "run_view_bench"]


@dataclass(frozen=True)
class ViewBenchConfig:
    touchpoints: int = 1_000_000
    customers: int = 150_000
    anonymous_keys: int = 100_000
    anonymous_share: float = 0.2  # of touchpoints stitched to an anonymous key at ingest
    merged_keys: int = 40_000  # anonymous keys merged into a customer later (identity_overrides rows)
    identifiers: int = 1_000_000  # identifiers ever linked (identity_links rows)
    database: str = "cx_bench"
    repeats: int = 3


@dataclass(frozen=True)
class QueryCost:
    name: str
    seconds: float  # median of the repeats
    memory_mb: float  # peak memory of the median run
    rows_read: int
    result_rows: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


QUERIES = {
    "stored key, no resolution (touchpoints FINAL)":
        "SELECT customer_key, count() AS n FROM {db}.touchpoints FINAL GROUP BY customer_key ORDER BY n DESC LIMIT 10",
    "touchpoints_resolved (overrides join), top customers":
        "SELECT customer_key, count() AS n FROM {db}.touchpoints_resolved GROUP BY customer_key ORDER BY n DESC "
        "LIMIT 10",
    "touchpoints_resolved, one customer":
        "SELECT count() FROM {db}.touchpoints_resolved WHERE customer_key = 'C-42'",
    "naive: join every identifier ever linked":
        "SELECT if(r = '', customer_key, r) AS ck, count() AS n FROM "
        "(SELECT customer_key, if(anonymous_id = '', concat('customer:', customer_id), concat('anon:', anonymous_id)) "
        "AS identifier FROM {db}.touchpoints FINAL) "
        "ANY LEFT JOIN (SELECT identifier, argMax(customer_key, version) AS r FROM {db}.identity_links "
        "GROUP BY identifier) USING (identifier) GROUP BY ck ORDER BY n DESC LIMIT 10",
}  # fmt: skip


def _fill(ch: ClickHouse, cfg: ViewBenchConfig) -> None:
    db = cfg.database
    anon_every = max(1, round(1 / cfg.anonymous_share)) if cfg.anonymous_share > 0 else 0
    is_anon = f"(number % {anon_every} = 0)" if anon_every else "0"
    ch.execute(
        f"INSERT INTO {db}.touchpoints (event_id, customer_key, channel, event_type, occurred_at, occurred_ms, "
        "received_at, source, experience_key, customer_id, anonymous_id, schema_version) "
        f"SELECT concat('e-', toString(number)) AS event_id, "
        f"if({is_anon}, concat('~anon:a', toString(intHash32(number) % {cfg.anonymous_keys})), "
        f"concat('C-', toString(intHash32(number) % {cfg.customers}))) AS customer_key, "
        "arrayElement(['web', 'app', 'phone', 'chat', 'wechat', 'store'], (number % 6) + 1) AS channel, "
        "'page_view' AS event_type, toDateTime(1760000000 + number % 7776000) AS occurred_at, "
        "(1760000000 + number % 7776000) * 1000 AS occurred_ms, now() AS received_at, 'bench' AS source, "
        "concat('event:e-', toString(number)) AS experience_key, "
        f"if({is_anon}, '', substring(customer_key, 3)) AS customer_id, "
        f"if({is_anon}, substring(customer_key, 8), '') AS anonymous_id, 1 AS schema_version "
        f"FROM system.numbers LIMIT {cfg.touchpoints}"
    )
    ch.execute(
        f"INSERT INTO {db}.identity_overrides (stitched_key, customer_key, merged_at, version) "
        f"SELECT concat('~anon:a', toString(number)), concat('C-', toString(number % {cfg.customers})), now(), 1 "
        f"FROM system.numbers LIMIT {cfg.merged_keys}"
    )
    ch.execute(
        f"INSERT INTO {db}.identity_links (identifier, identifier_type, customer_key, previous_key, linked_at, "
        "event_id, version) "
        f"SELECT multiIf(number < {cfg.anonymous_keys}, concat('anon:a', toString(number)), "
        f"number < {cfg.anonymous_keys + cfg.customers}, "
        f"concat('customer:C-', toString(number - {cfg.anonymous_keys})), "
        "concat('device:d', toString(number))) AS identifier, "
        "substring(identifier, 1, position(identifier, ':') - 1) AS identifier_type, "
        f"multiIf(number < {cfg.merged_keys}, concat('C-', toString(number % {cfg.customers})), "
        f"number < {cfg.anonymous_keys}, concat('~anon:a', toString(number)), "
        f"concat('C-', toString(number % {cfg.customers}))) AS customer_key, '' AS previous_key, now(), '', 1 "
        f"FROM system.numbers LIMIT {cfg.identifiers}"
    )
    ch.execute(f"OPTIMIZE TABLE {db}.touchpoints FINAL")


def _measure(ch: ClickHouse, name: str, sql: str, repeats: int) -> QueryCost:
    runs = []
    for _ in range(repeats):
        query_id = uuid.uuid4().hex
        started = time.perf_counter()
        result = ch.execute(sql.replace("{db}", ch.database), query_id=query_id, settings={"log_queries": 1})
        runs.append((time.perf_counter() - started, query_id, len(result)))
    ch.execute("SYSTEM FLUSH LOGS")
    runs.sort()
    _, query_id, result_rows = runs[len(runs) // 2]
    stats = []
    for _ in range(20):  # the log is flushed asynchronously on old servers
        stats = ch.execute(
            "SELECT memory_usage, read_rows FROM system.query_log WHERE query_id = %(q)s AND type = 2",
            {"q": query_id},
        )
        if stats:
            break
        time.sleep(0.25)
    memory, rows_read = stats[0] if stats else (0, 0)
    return QueryCost(name, round(statistics.median(r[0] for r in runs), 4), round(memory / 2**20, 1),
                     int(rows_read), result_rows)  # fmt: skip


def run_view_bench(settings: Settings, cfg: ViewBenchConfig | None = None) -> dict[str, Any]:
    """Fill `cx_bench` and measure each query; returns the figures (also for the JSON report)."""
    cfg = cfg or ViewBenchConfig()
    admin = settings.clickhouse_admin
    dsn = ClickHouseDSN(admin.host, admin.port, admin.user, admin.password, cfg.database)
    boot = ClickHouse(dsn, connect_database="default", send_timeout=600)
    boot.execute(f"DROP DATABASE IF EXISTS {cfg.database}")
    boot.close()
    ch = ClickHouse(dsn, send_timeout=600)
    migrate(ch)
    started = time.perf_counter()
    _fill(ch, cfg)
    fill_seconds = time.perf_counter() - started
    costs = [_measure(ch, name, sql, cfg.repeats) for name, sql in QUERIES.items()]
    sizes = dict(ch.execute(
        f"SELECT table, sum(rows) FROM system.parts WHERE database = '{cfg.database}' AND active "
        "AND table IN ('touchpoints', 'identity_overrides', 'identity_links') GROUP BY table"
    ))  # fmt: skip
    ch.execute(f"DROP DATABASE IF EXISTS {cfg.database}")
    ch.close()
    return {
        "config": asdict(cfg),
        "fill_seconds": round(fill_seconds, 2),
        "table_rows": {k: int(v) for k, v in sizes.items()},
        "queries": [c.as_dict() for c in costs],
    }
