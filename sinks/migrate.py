"""Versioned, idempotent schema migrations from `sinks/migrations/NNNN_name.sql`.

A migration whose SQL cannot be the same on ClickHouse 18.16 and on current releases has a second file,
`NNNN_name.current.sql`, that servers after 18.x run instead (`migrate` asks the server its version). The plain
file stays byte for byte what 18.16 deployments applied: the ledger holds its checksum.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, replace
from importlib import resources
from typing import Final, Literal

from schemas.errors import MigrationError, SinkError
from sinks.clickhouse import ClickHouse

__all__ = [
    "CURRENT",
    "LEGACY",
    "Engine",
    "Migration",
    "applied",
    "engine_of",
    "load_migrations",
    "migrate",
    "server_engine",
    "split_statements",
]

Engine = Literal["18.16", "current"]
LEGACY: Final[Engine] = "18.16"  # the local stack's ClickHouse (Debian package)
CURRENT: Final[Engine] = "current"  # every later release: compose's 24.8, chDB in the tests, clusters

_NAME: Final = re.compile(r"^(\d{4})_([a-z0-9_]+)(\.current)?\.sql$")
# Refusals meaning "this user may not change the schema": readonly (164), database access (291),
# `allow_ddl=0` (392, the local stack's writer), missing grants (497, current servers).
_NOT_ALLOWED: Final = frozenset({164, 291, 392, 497})


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str
    # Checksums of the same migration's file for the other engine, also taken as applied: a server upgraded
    # in place from 18.16 keeps the ledger its 18.16 variant wrote.
    variants: frozenset[str] = frozenset()

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()[:16]

    def recorded_as(self, checksum: str) -> bool:
        """Does a ledger `checksum` record this migration (its file for this engine or for the other)?"""
        return checksum == self.checksum or checksum in self.variants


def split_statements(sql: str) -> list[str]:
    """Statements of a migration file: `;` at a line end separates them; `--` lines are comments."""
    body = "\n".join(line for line in sql.splitlines() if not line.lstrip().startswith("--"))
    return [s.strip() for s in re.split(r";\s*(?:\n|$)", body) if s.strip()]


def engine_of(version: str) -> Engine:
    """Which migration files a server of `version` (as `SELECT version()` says) runs: 18.x and older, or later."""
    major = version.split(".", 1)[0]
    return LEGACY if major.isdigit() and int(major) <= 18 else CURRENT


def server_engine(ch: ClickHouse) -> Engine:
    """The engine of the server behind `ch`; 18.16 when it does not say (a test double answering nothing)."""
    rows = ch.execute("SELECT version()")
    return engine_of(str(rows[0][0])) if rows else LEGACY


def _for_engine(plain: Migration, current: Migration | None, engine: Engine) -> Migration:
    """The file of one migration that `engine` runs, knowing the other file's checksum."""
    if current is None:
        return plain
    chosen, other = (current, plain) if engine == CURRENT else (plain, current)
    return replace(chosen, variants=frozenset({other.checksum}))


def load_migrations(package: str = "sinks.migrations", engine: Engine = LEGACY) -> list[Migration]:
    """Every migration in version order, each as `engine` runs it (its `.current.sql` file on CURRENT, if any)."""
    plain: list[Migration] = []
    current: list[Migration] = []
    for entry in resources.files(package).iterdir():
        match = _NAME.match(entry.name)
        if match:
            (current if match.group(3) else plain).append(
                Migration(int(match.group(1)), match.group(2), entry.read_text())
            )
    by_version = {m.version: m for m in plain}
    variants = {m.version: m for m in current}
    if len(by_version) != len(plain) or len(variants) != len(current):
        raise MigrationError(f"two migrations share a version: {sorted(m.version for m in plain + current)}")
    for variant in current:
        base = by_version.get(variant.version)
        if base is None or base.name != variant.name:
            raise MigrationError(f"{variant.version:04d}_{variant.name}.current.sql is the variant of no migration")
    return [_for_engine(by_version[v], variants.get(v), engine) for v in sorted(by_version)]


def ensure_database(ch: ClickHouse) -> None:
    """Create the database if it is missing, connecting to `default` for that one statement."""
    try:
        ch.execute("SELECT 1")
        return
    except SinkError as exc:  # includes SinkUnavailable: old servers drop the handshake for a missing database
        first = exc
    boot = ClickHouse(ch.dsn, connect_database="default")
    try:
        boot.execute(f"CREATE DATABASE IF NOT EXISTS {ch.database}")
    except SinkError as exc:
        raise MigrationError(
            f"cannot use database {ch.database!r} as {ch.dsn.user} ({first}) nor create it ({exc}); "
            "create it as an administrator or check CXJ_CLICKHOUSE_ADMIN_URL"
        ) from exc
    finally:
        boot.close()


def _not_allowed_hint(ch: ClickHouse, exc: SinkError) -> str:
    if getattr(exc.__cause__, "code", None) not in _NOT_ALLOWED:
        return ""
    return (
        f"; {ch.dsn.user} may not change the schema: migrations run as the administrator "
        "(CXJ_CLICKHOUSE_ADMIN_URL, written to stack.env by `cxj stack up`), never as the pipeline's writer"
    )


def _ledger(ch: ClickHouse) -> None:
    ensure_database(ch)
    try:
        ch.execute(
            f"CREATE TABLE IF NOT EXISTS {ch.database}.schema_migrations "
            "(version UInt32, name String, checksum String, applied_at DateTime DEFAULT now()) "
            "ENGINE = ReplacingMergeTree ORDER BY version"
        )
    except SinkError as exc:
        raise MigrationError(f"cannot create the migration ledger: {exc}{_not_allowed_hint(ch, exc)}") from exc


def applied(ch: ClickHouse) -> dict[int, str]:
    """Applied migration versions and their checksums."""
    _ledger(ch)
    # The database name is a validated identifier (ClickHouseDSN.parse).
    rows = ch.execute(f"SELECT version, checksum FROM {ch.database}.schema_migrations FINAL")  # noqa: S608
    return {int(v): str(c) for v, c in rows}


_ADD_COLUMN: Final = re.compile(r"ALTER TABLE (\w+)\.(\w+) ADD COLUMN (\w+) ")


def _column_exists(ch: ClickHouse, statement: str) -> bool:
    """Is `statement` an `ADD COLUMN` whose column is already there (a migration interrupted halfway)?"""
    match = _ADD_COLUMN.match(statement)
    if match is None:
        return False
    database, table, column = match.groups()
    found = ch.execute(
        "SELECT count() FROM system.columns WHERE database = %(d)s AND table = %(t)s AND name = %(c)s",
        {"d": database, "t": table, "c": column},
    )
    return bool(found[0][0])


def migrate(ch: ClickHouse, migrations: list[Migration] | None = None) -> list[Migration]:
    """Apply what is missing, in order; returns the migrations applied now.

    Each statement is idempotent (IF NOT EXISTS; an `ADD COLUMN` is skipped when the column exists,
    since 18.16 has no `ADD COLUMN IF NOT EXISTS`), so a migration interrupted halfway is simply run
    again; one whose file changed after it was applied is refused. Without `migrations`, the files for the
    server's engine (`server_engine`).
    """
    done = applied(ch)
    migrations = load_migrations(engine=server_engine(ch)) if migrations is None else migrations
    ran = []
    for m in migrations:
        if m.version in done:
            if not m.recorded_as(done[m.version]):
                raise MigrationError(
                    f"migration {m.version:04d}_{m.name} changed after it was applied; "
                    "add a new migration instead of editing an applied one"
                )
            continue
        for statement in split_statements(m.sql.replace("{db}", ch.database)):
            if _column_exists(ch, statement):
                continue
            try:
                ch.execute(statement)
            except SinkError as exc:
                hint = _not_allowed_hint(ch, exc)
                raise MigrationError(f"migration {m.version:04d}_{m.name} failed: {exc}{hint}") from exc
        ch.execute(
            f"INSERT INTO {ch.database}.schema_migrations (version, name, checksum) VALUES",
            [(m.version, m.name, m.checksum)],
        )
        ran.append(m)
    return ran
