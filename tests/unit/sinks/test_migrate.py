"""Migrations without a server: discovery order, checksums, statement splitting, the ledger protocol."""

from __future__ import annotations

import hashlib
import re
import sys
from pathlib import Path
from typing import Any

import pytest

from schemas.errors import MigrationError, SinkError
from schemas.rows import ROWS_BY_TABLE
from sinks.migrate import _ADD_COLUMN, Migration, load_migrations, migrate, split_statements

MIGRATIONS = load_migrations()


class FakeClickHouse:
    """Records statements; answers the ledger query from what was inserted into it."""

    def __init__(self, database: str = "cx", ledger: dict[int, str] | None = None, fail_on: str = "") -> None:
        self.database = database
        self.ledger = dict(ledger or {})
        self.fail_on = fail_on
        self.statements: list[str] = []
        self.columns: set[tuple[str, str, str]] = set()

    def execute(self, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
        self.statements.append(sql)
        if self.fail_on and self.fail_on in sql:
            raise SinkError("boom")
        if sql.startswith("SELECT version, checksum"):
            return list(self.ledger.items())
        if sql.startswith("SELECT count() FROM system.columns"):
            return [(int((params["d"], params["t"], params["c"]) in self.columns),)]
        added = _ADD_COLUMN.match(sql)
        if added:
            self.columns.add(added.groups())
        if sql.startswith(f"INSERT INTO {self.database}.schema_migrations"):
            for version, _name, checksum in params:
                self.ledger[version] = checksum
        return []


def _package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, files: dict[str, str]) -> str:
    name = f"fake_migrations_{abs(hash(tuple(files))) % 10**8}"
    pkg = tmp_path / name
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    for filename, sql in files.items():
        (pkg / filename).write_text(sql)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, name, raising=False)
    return name


# --- discovery and checksums ------------------------------------------------------------------------


def test_project_migrations_are_found_in_version_order() -> None:
    versions = [m.version for m in MIGRATIONS]
    assert versions == sorted(versions) == list(range(1, len(versions) + 1))
    assert all(re.fullmatch(r"[a-z0-9_]+", m.name) for m in MIGRATIONS)


def test_only_numbered_sql_files_are_migrations_and_order_is_numeric(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = _package(
        tmp_path,
        monkeypatch,
        {
            "0010_later.sql": "SELECT 10;",
            "0002_second.sql": "SELECT 2;",
            "0001_first.sql": "SELECT 1;",
            "README.md": "not a migration",
            "0003-dashes.sql": "SELECT 3;",
            "3_short.sql": "SELECT 3;",
            "0004_Upper.sql": "SELECT 4;",
        },
    )
    found = load_migrations(name)
    assert [(m.version, m.name) for m in found] == [(1, "first"), (2, "second"), (10, "later")]


def test_two_migrations_with_one_version_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    name = _package(tmp_path, monkeypatch, {"0001_a.sql": "SELECT 1;", "0001_b.sql": "SELECT 2;"})
    with pytest.raises(MigrationError, match="share a version"):
        load_migrations(name)


def test_checksum_is_a_digest_of_the_sql_and_changes_with_it() -> None:
    m = Migration(1, "x", "CREATE TABLE IF NOT EXISTS {db}.t (a UInt8) ENGINE = Log;")
    assert m.checksum == hashlib.sha256(m.sql.encode()).hexdigest()[:16]
    assert Migration(1, "x", m.sql + "\n").checksum != m.checksum
    assert Migration(2, "y", m.sql).checksum == m.checksum


# --- splitting --------------------------------------------------------------------------------------


def test_statements_split_at_line_end_semicolons_and_comments_are_dropped() -> None:
    sql = (
        "-- header comment; with a semicolon\n"
        "CREATE TABLE a (x String DEFAULT 'a;b') ENGINE = Log;\n"
        "   -- indented comment\n"
        "CREATE VIEW v AS\n"
        "SELECT 1;   \n"
        "SELECT 2"
    )
    assert split_statements(sql) == [
        "CREATE TABLE a (x String DEFAULT 'a;b') ENGINE = Log",
        "CREATE VIEW v AS\nSELECT 1",
        "SELECT 2",
    ]


AGGREGATES = {"signals_hourly", "risk_daily", "journey_funnel"}
# Copies of a table's rows under another key (0008): replacing tables whose sorting key holds the source's
# identity, read with FINAL, so a backfill run twice leaves what one run leaves.
COPIES = {
    "touchpoints_by_customer": "event_id",
    "signals_by_customer": "event_id",
    "journeys_by_customer": "journey_id",
    "alerts_by_customer": "alert_id",
}


@pytest.mark.parametrize("migration", MIGRATIONS, ids=lambda m: f"{m.version:04d}_{m.name}")
def test_every_statement_is_idempotent_and_portable(migration: Migration) -> None:
    statements = split_statements(migration.sql)
    assert statements
    for statement in statements:
        assert statement.count("{db}") >= 1
        copy = re.match(r"INSERT INTO \{db\}\.(\w+)", statement)
        if copy is not None and copy.group(1) in COPIES:
            create = re.search(rf"CREATE TABLE IF NOT EXISTS \{{db\}}\.{copy.group(1)}\s*\(.*?ENGINE = (\w+)\s*"
                               r"(?:\(\w*\))?\s*ORDER BY \(([^)]*)\)", migration.sql, re.S)  # fmt: skip
            assert create is not None and create.group(1) == "ReplacingMergeTree", statement[:80]
            assert COPIES[copy.group(1)] in create.group(2).replace(" ", "").split(","), create.group(2)
            continue
        if statement.startswith("INSERT INTO {db}.journeys\n"):
            # The journey-id rewrite is re-runnable: it reads only rows without '@' in id and pointer,
            # and writes only rows with one.
            assert "WHERE position(journey_id, '@') = 0 AND position(merged_into, '@') = 0" in statement
            assert "concat(journey_id, '@', customer_key)" in statement
            continue
        if statement.startswith("INSERT INTO"):
            # A backfill is re-runnable only into an aggregate of distinct counts and argMax states.
            target = re.match(r"INSERT INTO \{db\}\.(\w+)", statement)
            assert target is not None and target.group(1) in AGGREGATES, statement[:80]
            functions = set(re.findall(r"\b(\w+State)\(", statement))
            assert functions and functions <= {"uniqExactState", "argMaxState", "minState"}, functions
            continue
        if statement.startswith("ALTER TABLE"):
            # 18.16 has no ADD COLUMN IF NOT EXISTS: `migrate` skips a column that is already there.
            assert _ADD_COLUMN.match(statement.replace("{db}", "cx")), statement[:80]
            continue
        dropped = re.fullmatch(r"DROP TABLE IF EXISTS \{db\}\.(\w+)", statement)
        if dropped is not None:
            # Only a view, recreated (with more columns) later in the same migration.
            after = migration.sql[migration.sql.index(statement) + len(statement) :]
            recreated = rf"CREATE (MATERIALIZED )?VIEW IF NOT EXISTS \{{db\}}\.{dropped.group(1)} "
            assert re.search(recreated, after), statement
            continue
        head = statement.split("(")[0].split(" AS")[0]
        assert "IF NOT EXISTS" in head, head
    # ClickHouse 18.16 has neither TTL nor DateTime64.
    assert not re.search(r"\bTTL\b|DateTime64", migration.sql)


# --- the tables match the rows written to them and Contract 3 -----------------------------------


def _tables() -> dict[str, tuple[str, dict[str, str]]]:
    """table -> (engine, {column: type}) from the CREATE TABLE statements."""
    tables = {}
    for m in MIGRATIONS:
        for statement in split_statements(m.sql):
            found = re.match(r"CREATE TABLE IF NOT EXISTS \{db\}\.(\w+)\s*\((.*)\)\s*ENGINE = (\w+)", statement, re.S)
            if found:
                columns = {}
                for line in found.group(2).splitlines():
                    parts = line.strip().rstrip(",").split(None, 1)
                    if len(parts) == 2:
                        columns[parts[0]] = parts[1]
                tables[found.group(1)] = (found.group(3), columns)
            added = re.match(r"ALTER TABLE \{db\}\.(\w+) ADD COLUMN (\w+) (.*)", statement, re.S)
            if added:
                tables[added.group(1)][1][added.group(2)] = added.group(3)
    return tables


CONTRACT_ENGINES = {
    "touchpoints": "ReplacingMergeTree",
    "identity_links": "ReplacingMergeTree",
    "experience_signals": "ReplacingMergeTree",
    "customer_experience": "ReplacingMergeTree",
    "churn_alerts": "ReplacingMergeTree",
    "journeys": "ReplacingMergeTree",
    "dead_letters": "MergeTree",
}


@pytest.mark.parametrize(("table", "engine"), CONTRACT_ENGINES.items())
def test_contract_tables_exist_with_their_engine(table: str, engine: str) -> None:
    tables = _tables()
    assert table in tables
    assert tables[table][0] == engine


@pytest.mark.parametrize("table", sorted(ROWS_BY_TABLE))
def test_every_row_field_is_a_column_and_every_column_without_default_is_written(table: str) -> None:
    _, columns = _tables()[table]
    fields = set(ROWS_BY_TABLE[table]._fields)
    assert fields <= set(columns)
    assert {c for c, t in columns.items() if "DEFAULT" not in t} <= fields


@pytest.mark.parametrize(("table", "version"), [("customer_experience", "version"), ("journeys", "version")])
def test_versioned_tables_replace_by_their_version_column(table: str, version: str) -> None:
    sql = "\n".join(m.sql for m in MIGRATIONS)
    assert re.search(rf"\{{db\}}\.{table}\s*\(.*?ENGINE = ReplacingMergeTree\({version}\)", sql, re.S)


def test_the_resolved_view_exists() -> None:
    sql = "\n".join(m.sql for m in MIGRATIONS)
    assert "CREATE VIEW IF NOT EXISTS {db}.touchpoints_resolved" in sql


# --- applying ------------------------------------------------------------------------------------


def test_an_interrupted_add_column_is_skipped_when_the_column_is_there() -> None:
    ch = FakeClickHouse()
    version = next(m.version for m in MIGRATIONS if "ADD COLUMN" in m.sql)
    ch.ledger = {m.version: m.checksum for m in MIGRATIONS if m.version < version}
    ch.columns.add(("cx", "dead_letters", "payload_hash"))  # the first statement ran, then the process died
    migrate(ch)  # type: ignore[arg-type]
    alters = [s for s in ch.statements if s.startswith("ALTER TABLE cx.dead_letters")]
    assert alters == ["ALTER TABLE cx.dead_letters ADD COLUMN subjects Array(String) DEFAULT emptyArrayString()"]
    assert version in ch.ledger


def test_migrate_applies_everything_in_order_into_the_configured_database() -> None:
    ch = FakeClickHouse(database="analytics")
    ran = migrate(ch, MIGRATIONS)  # type: ignore[arg-type]
    assert ran == MIGRATIONS
    assert ch.ledger == {m.version: m.checksum for m in MIGRATIONS}
    applied = [s for s in ch.statements if s.startswith("CREATE TABLE IF NOT EXISTS analytics.")]
    assert applied and not any("{db}" in s for s in ch.statements)
    inserts = [s for s in ch.statements if s.startswith("INSERT INTO analytics.schema_migrations")]
    assert len(inserts) == len(MIGRATIONS)


def test_migrate_again_applies_nothing() -> None:
    ch = FakeClickHouse()
    migrate(ch, MIGRATIONS)  # type: ignore[arg-type]
    before = len(ch.statements)
    assert migrate(ch, MIGRATIONS) == []  # type: ignore[arg-type]
    assert not any(s.startswith("CREATE TABLE IF NOT EXISTS cx.touchpoints") for s in ch.statements[before:])


def test_only_missing_migrations_are_applied() -> None:
    extra = Migration(
        MIGRATIONS[-1].version + 1, "extra", "CREATE TABLE IF NOT EXISTS {db}.extra (a UInt8) ENGINE = Log;"
    )
    ch = FakeClickHouse(ledger={m.version: m.checksum for m in MIGRATIONS})
    assert migrate(ch, [*MIGRATIONS, extra]) == [extra]  # type: ignore[arg-type]
    assert "CREATE TABLE IF NOT EXISTS cx.extra (a UInt8) ENGINE = Log" in ch.statements


def test_a_migration_edited_after_it_was_applied_is_refused() -> None:
    first = MIGRATIONS[0]
    ch = FakeClickHouse(ledger={first.version: "0" * 16})
    with pytest.raises(MigrationError, match="changed after it was applied"):
        migrate(ch, MIGRATIONS)  # type: ignore[arg-type]


def test_a_failing_statement_is_a_migration_error_and_is_not_recorded() -> None:
    ch = FakeClickHouse(fail_on="cx.touchpoints")
    with pytest.raises(MigrationError, match=f"{MIGRATIONS[0].version:04d}_{MIGRATIONS[0].name}"):
        migrate(ch, MIGRATIONS)  # type: ignore[arg-type]
    assert MIGRATIONS[0].version not in ch.ledger
