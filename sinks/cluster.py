"""The ClickHouse cluster variant of the schema: Replicated*MergeTree shards behind Distributed tables.

Derived from the same migrations as the single-node schema, so the two never drift; as current releases run them
(each migration's `.current.sql` file where it has one), since a cluster runs a current ClickHouse (the
generated ALTERs use `ADD COLUMN IF NOT EXISTS`, which 18.16 lacks):
- every `CREATE TABLE {db}.t ... ENGINE = XMergeTree(args)` becomes `{db}.t_local` with
  `ReplicatedXMergeTree('/clickhouse/tables/{shard}/{db}/t', '{replica}', args)` ON CLUSTER, plus
  `{db}.t` as `Distributed(cluster, db, t_local, <sharding key>)` so the pipeline and BI keep the same names;
- materialized views read and write the local tables on each shard (a rollup row is built where its source
  row lands; the rollups' distinct-count states merge exactly across shards);
- plain views stay on the Distributed tables, with GLOBAL joins (the small overrides side is shipped once);
- a view dropped to be recreated with more columns is dropped ON CLUSTER;
- one-off backfill INSERTs are dropped (a new cluster starts empty; backfill with INSERT ... SELECT);
- tables in `EVERY_SERVER` are not sharded: one ReplicatedMergeTree whose replicas are all the servers.

Sharding keys keep each deduplication key on one shard (ReplacingMergeTree only deduplicates within a shard).
"""

from __future__ import annotations

import re
from typing import Final

from schemas.rows import Table
from sinks.migrate import CURRENT, load_migrations, split_statements

__all__ = ["EVERY_SERVER", "SHARDING_KEYS", "cluster_schema"]

SHARDING_KEYS: Final = {
    Table.TOUCHPOINTS: "cityHash64(event_id)",
    Table.EXPERIENCE_SIGNALS: "cityHash64(event_id)",
    Table.CUSTOMER_EXPERIENCE: "cityHash64(customer_key)",
    Table.CHURN_ALERTS: "cityHash64(alert_id)",
    Table.JOURNEYS: "cityHash64(journey_id)",
    Table.IDENTITY_LINKS: "cityHash64(identifier)",
    Table.IDENTITY_OVERRIDES: "cityHash64(stitched_key)",
    Table.IDENTITY_CONFLICTS: "cityHash64(identifier)",
    Table.DEAD_LETTERS: "rand()",
    "schema_migrations": "version",
    "signals_hourly": "cityHash64(channel, signal)",
    "risk_daily": "cityHash64(customer_key)",
    "journey_funnel": "cityHash64(journey_id)",
    Table.ERASURES: "cityHash64(request_id)",
    Table.ALERT_OUTCOMES: "cityHash64(alert_id)",
    # Written by materialized views on the shard of their source row; read whole through the Distributed table.
    "touchpoints_by_customer": "cityHash64(event_id)",
    "signals_by_customer": "cityHash64(event_id)",
    "journeys_by_customer": "cityHash64(journey_id)",
    "alerts_by_customer": "cityHash64(alert_id)",
}
# Held whole by every server, under its own name (no `_local`, no Distributed table). `erasure_subjects`: the
# subqueries of `cxj forget`'s mutations read it, and each replica of each shard runs them on its own parts.
# The replica name joins both macros, since `{replica}` alone may repeat across shards.
EVERY_SERVER: Final = frozenset({"erasure_subjects"})

_CREATE_TABLE = re.compile(r"CREATE TABLE IF NOT EXISTS (\{db\})\.(\w+)", re.S)
_ENGINE = re.compile(r"ENGINE\s*=\s*(\w*MergeTree)(?:\(([^)]*)\))?")
_ALTER = re.compile(r"ALTER TABLE \{db\}\.(\w+) (ADD COLUMN .*)", re.S)
_MV = re.compile(r"CREATE MATERIALIZED VIEW IF NOT EXISTS \{db\}\.(\w+) TO \{db\}\.(\w+) AS", re.S)


def _table(statement: str, cluster: str) -> list[str]:
    name = _CREATE_TABLE.search(statement)
    engine = _ENGINE.search(statement)
    if name is None or engine is None:
        raise ValueError(f"cannot convert statement:\n{statement}")
    table = name.group(2)
    args = [a.strip() for a in (engine.group(2) or "").split(",") if a.strip()]
    if table in EVERY_SERVER:
        whole = ", ".join([f"'/clickhouse/tables/all/{{db}}/{table}'", "'{shard}-{replica}'", *args])
        everywhere = f"ENGINE = Replicated{engine.group(1)}({whole})"
        statement = _CREATE_TABLE.sub(f"CREATE TABLE IF NOT EXISTS {{db}}.{table} ON CLUSTER '{cluster}'", statement, 1)
        return [_ENGINE.sub(lambda _: everywhere, statement, 1)]
    zk_path = f"'/clickhouse/tables/{{shard}}/{{db}}/{table}'"
    engine_args = ", ".join([zk_path, "'{replica}'", *args])
    replicated = f"ENGINE = Replicated{engine.group(1)}({engine_args})"
    local = _CREATE_TABLE.sub(f"CREATE TABLE IF NOT EXISTS {{db}}.{table}_local ON CLUSTER '{cluster}'", statement, 1)
    local = _ENGINE.sub(lambda _: replicated, local, 1)
    key = SHARDING_KEYS.get(table)
    if key is None:
        raise ValueError(f"no sharding key for table {table}: add one to SHARDING_KEYS")
    distributed = (
        f"CREATE TABLE IF NOT EXISTS {{db}}.{table} ON CLUSTER '{cluster}' AS {{db}}.{table}_local\n"
        f"ENGINE = Distributed('{cluster}', '{{db}}', '{table}_local', {key})"
    )
    return [local, distributed]


def _materialized_view(statement: str, cluster: str) -> str:
    def local(match: re.Match[str]) -> str:
        return (f"CREATE MATERIALIZED VIEW IF NOT EXISTS {{db}}.{match.group(1)} ON CLUSTER '{cluster}' "
                f"TO {{db}}.{match.group(2)}_local AS")  # fmt: skip

    head = _MV.sub(local, statement, 1)
    return re.sub(r"FROM \{db\}\.(\w+)", r"FROM {db}.\1_local", head)


def _alter(statement: str, cluster: str) -> list[str]:
    """A column change, on the shards' local tables and on the Distributed table in front of them."""
    match = _ALTER.match(statement)
    if match is None:
        raise ValueError(f"cannot convert statement:\n{statement}")
    # Current releases take IF NOT EXISTS, so the generated file can be applied again like its CREATEs.
    table, change = match.group(1), match.group(2).replace("ADD COLUMN ", "ADD COLUMN IF NOT EXISTS ", 1)
    return [
        f"ALTER TABLE {{db}}.{table}_local ON CLUSTER '{cluster}' {change}",
        f"ALTER TABLE {{db}}.{table} ON CLUSTER '{cluster}' {change}",
    ]


def cluster_schema(database: str = "cx", cluster: str = "cx") -> str:
    """The whole schema as ON CLUSTER DDL for `cluster`, database `database`."""
    out = [f"CREATE DATABASE IF NOT EXISTS {{db}} ON CLUSTER '{cluster}'"]
    for migration in load_migrations(engine=CURRENT):
        for statement in split_statements(migration.sql):
            text = statement.strip()
            upper = text.upper()
            if upper.startswith("CREATE DATABASE") or upper.startswith("INSERT INTO"):
                continue
            if upper.startswith("CREATE TABLE"):
                out.extend(_table(text, cluster))
            elif upper.startswith("CREATE MATERIALIZED VIEW"):
                out.append(_materialized_view(text, cluster))
            elif upper.startswith("ALTER TABLE"):
                out.extend(_alter(text, cluster))
            elif upper.startswith("DROP TABLE IF EXISTS"):  # a view recreated with more columns
                out.append(re.sub(r"^(DROP TABLE IF EXISTS \{db\}\.\w+)", rf"\1 ON CLUSTER '{cluster}'", text))
            elif upper.startswith("CREATE VIEW"):
                view = re.sub(r"^(CREATE VIEW IF NOT EXISTS \{db\}\.\w+)", rf"\1 ON CLUSTER '{cluster}'", text)
                out.append(view.replace("ANY LEFT JOIN", "GLOBAL ANY LEFT JOIN"))
            else:
                raise ValueError(f"no cluster form for statement:\n{text}")
    header = (f"-- cx-journeys schema for ClickHouse cluster '{cluster}', database {database}: generated from "
              "sinks/migrations by `cxj schema cluster`; do not edit.\n")  # fmt: skip
    return header + ";\n\n".join(s.replace("{db}", database) for s in out) + ";\n"
