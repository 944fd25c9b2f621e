"""The cluster schema: what `cxj forget`'s mutations read on each shard is held whole by every server."""

from __future__ import annotations

from sinks.cluster import EVERY_SERVER, SHARDING_KEYS, cluster_schema
from sinks.migrate import load_migrations, split_statements


def test_erasure_subjects_is_one_replicated_table_on_every_server_not_a_shard() -> None:
    ddl = cluster_schema("cx", "cx")
    assert (
        "CREATE TABLE IF NOT EXISTS cx.erasure_subjects ON CLUSTER 'cx'" in ddl
        and "ENGINE = ReplicatedMergeTree('/clickhouse/tables/all/cx/erasure_subjects', '{shard}-{replica}')" in ddl
    )
    # Each shard's mutation reads it locally: no `_local` half, no Distributed table in front.
    assert "erasure_subjects_local" not in ddl and "Distributed('cx', 'cx', 'erasure_subjects" not in ddl


def test_every_table_of_the_migrations_is_sharded_or_held_by_every_server() -> None:
    created = {
        s.split("{db}.", 1)[1].split()[0]
        for m in load_migrations()
        for s in split_statements(m.sql)
        if s.upper().startswith("CREATE TABLE")
    }
    assert created - set(SHARDING_KEYS) == EVERY_SERVER
    assert not set(SHARDING_KEYS) & EVERY_SERVER
