"""Security on the real stack: no raw phone or e-mail in any String column of any table; least privilege."""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from clickhouse_driver import Client
from clickhouse_driver.errors import ServerException
from typer.testing import CliRunner

from cxj.cli import app
from deploy.local.clickhouse_config import BI_PROFILE
from schemas.errors import MigrationError
from schemas.settings import ClickHouseDSN, Settings, load_settings
from sinks.clickhouse import ClickHouse
from sinks.migrate import migrate
from tests.factories import touchpoint
from tests.integration.pipeline_support import consume_all, query, send_and_drain, string_columns

pytestmark = pytest.mark.integration


def _pii_traffic(run: str) -> tuple[list[dict[str, object] | bytes], list[str]]:
    """Valid and invalid touchpoints carrying phones and e-mails in every place a feeder might put them."""
    rng = random.Random(run)
    digits = f"{rng.randrange(10**8):08d}"
    phone_spellings = [f"139{digits}", f"+86 139 {digits[:4]} {digits[4:]}", f"139-{digits[:4]}-{digits[4:]}"]
    email = f"pii.{run}@example.com"
    now = datetime.now(UTC) - timedelta(hours=1)
    valid = [
        touchpoint("login", channel="app", at=now, identity={"customer_id": f"P-{run}", "phone": phone_spellings[0],
                                                              "email": f"  {email.upper()} "}),
        touchpoint("contact_ended", channel="phone", at=now, identity={"phone": phone_spellings[1]},
                   context={"contact_id": f"k-{run}"}, metrics={"wait_seconds": 300, "resolved": False,
                                                                 "handled_by": "human", "transfers": 3},
                   attributes={"note": f"call back on {phone_spellings[2]} or {email}"}),
        touchpoint("survey_response", channel="email", at=now, identity={"email": email},
                   context={"contact_id": f"k-{run}"}, metrics={"csat": 1}),
    ]  # fmt: skip
    invalid: list[dict[str, object] | bytes] = [
        touchpoint(identity={"phone": phone_spellings[1], "email": email}, metrics={"csat": 11}),  # invalid_field
        orjson.dumps(touchpoint(identity={"phone": int(phone_spellings[0]), "email": email})),  # number phone
        f'{{"broken": "{email}", "phone": "{phone_spellings[2]}"'.encode(),  # invalid_json
    ]
    needles = [f"139{digits}", f"{digits[:4]} {digits[4:]}", f"{digits[:4]}-{digits[4:]}", email, email.upper()]
    return [*valid, *invalid], needles


def test_no_raw_phone_or_email_in_any_string_column(pipeline: Settings) -> None:
    run = uuid.uuid4().hex[:10]
    payloads, needles = _pii_traffic(run)
    send_and_drain(pipeline, payloads)
    resolved = "SELECT count() FROM {db}.touchpoints_resolved WHERE customer_key = %(k)s"
    assert query(pipeline, resolved, {"k": f"P-{run}"})[0][0] == 3  # phone and e-mail linked by their hashes
    scanned = 0
    for table, column in string_columns(pipeline):
        for needle in needles:
            found = query(pipeline, f"SELECT count() FROM {{db}}.{table} WHERE positionCaseInsensitive("
                          f"toString({column}), %(n)s) > 0", {"n": needle})  # fmt: skip
            assert found == [(0,)], f"raw PII {needle!r} stored in {table}.{column}"
        scanned += 1
    assert scanned >= 40  # every String column of every table, not a sample
    # The dead-letter rows exist (so their raw column was really scanned) ...
    assert query(pipeline, "SELECT count() FROM {db}.dead_letters WHERE received_at > now() - 600 "
                 "AND (raw LIKE '%<phone>%' OR raw LIKE '%<email>%')")[0][0] >= 3  # fmt: skip
    # ... and internal topics carry hashes only; the DLQ topic keeps the payload for replay (see README).
    for topic in ("cx.internal.stitch", "cx.internal.claims", "cx.identity.links", "cx.churn.alerts",
                  "cx.internal.state"):  # fmt: skip
        for message in consume_all(pipeline, topic, timeout_ms=1500):
            blob = (message.value or b"").lower()
            assert not any(n.lower().encode() in blob for n in needles), topic


# --- least privilege (ClickHouse 18.16: deploy/local/clickhouse_config.py says what it can and cannot deny) ---


def _client(dsn: ClickHouseDSN) -> Client:
    return Client(dsn.host, port=dsn.port, user=dsn.user, password=dsn.password.get_secret_value(),
                  database=dsn.database)  # fmt: skip


def _refusal(client: Client, sql: str, params: Any = None, **kwargs: Any) -> int | None:
    """The server's error code for `sql`, None when it ran."""
    try:
        client.execute(sql, params, **kwargs)
    except ServerException as exc:
        return int(exc.code)
    return None


@pytest.fixture(scope="module")
def schema(stack: Settings) -> Settings:
    """`cxj init` as a user runs it: migrations through CXJ_CLICKHOUSE_ADMIN_URL from stack.env."""
    result = CliRunner().invoke(app, ["--home", str(stack.home), "init"])
    assert result.exit_code == 0, f"{result.output}\n{result.exception!r}"
    assert "migrations applied" in result.output
    return stack


@pytest.fixture
def probe(schema: Settings) -> Iterator[str]:
    """A scratch MergeTree table the administrator creates and drops, so a failed denial harms no real table."""
    admin = _client(schema.clickhouse_schema_admin)
    table = f"{schema.clickhouse.database}.privilege_probe_{uuid.uuid4().hex[:8]}"
    admin.execute(f"CREATE TABLE {table} (a UInt8) ENGINE = MergeTree ORDER BY a")
    try:
        yield table
    finally:
        admin.execute(f"DROP TABLE IF EXISTS {table}")
        admin.disconnect()


def test_bi_reads_cx_and_nothing_else(schema: Settings, probe: str) -> None:
    ClickHouse(schema.clickhouse).insert(probe.split(".")[1], ["a"], [(3,)])
    bi = _client(schema.clickhouse_bi)
    assert bi.execute(f"SELECT a FROM {probe}") == [(3,)]
    assert len(bi.execute("SELECT * FROM touchpoints_resolved LIMIT 1")) <= 1  # the migrated tables and views
    prometheus, clickhouse = schema.prometheus_port, schema.clickhouse_port
    refused = {  # 164 READONLY: readonly=1 refuses table functions, SET and every write
        "url": f"SELECT * FROM url('http://127.0.0.1:{prometheus}/-/ready', CSV, 'a String')",
        "remote": f"SELECT * FROM remote('127.0.0.1:{clickhouse}', system.one)",
        "file": "SELECT * FROM file('users.xml', CSV, 'a String')",
        "numbers": "SELECT * FROM numbers(1)",
        "set": "SET max_memory_usage = 0",
        "insert": f"INSERT INTO {probe} VALUES",
        "drop": f"DROP TABLE {probe}",
        "create": "CREATE TABLE bi_table (a UInt8) ENGINE = Memory",
        "temporary": "CREATE TEMPORARY TABLE bi_scratch (a UInt8) ENGINE = Memory",
        "alter": f"ALTER TABLE {probe} DELETE WHERE a = 1",
        "optimize": f"OPTIMIZE TABLE {probe}",
        "truncate": f"TRUNCATE TABLE {probe}",
        "rename": f"RENAME TABLE {probe} TO {probe}_moved",
        "system": "SYSTEM FLUSH LOGS",
    }
    codes = {name: _refusal(bi, sql, [{"a": 1}] if name == "insert" else None) for name, sql in refused.items()}
    assert codes == dict.fromkeys(refused, 164)
    assert _refusal(bi, "SELECT count() FROM default.nothing") == 291  # allow_databases: cx only
    # Settings sent with a query are ignored for a readonly=1 user: the profile's limits hold.
    limit = BI_PROFILE["max_memory_usage"]
    shown = bi.execute("SELECT value FROM system.settings WHERE name = 'max_memory_usage'",
                       settings={"max_memory_usage": 0})  # fmt: skip
    assert shown == [(str(limit),)]
    # Over its memory limit: one allocation of rows x 10 MB > limit is refused before it is made (~0.3 s).
    rows = int(limit) // 10_000_000 + 100
    hog = ("SELECT count() FROM (SELECT s FROM (SELECT materialize(toFixedString('x', 10000000)) AS s, "
           f"range({rows}) AS r) ARRAY JOIN r) WHERE s != ''")  # fmt: skip
    assert _refusal(bi, hog, settings={"max_memory_usage": 0}) == 241
    bi.disconnect()


def test_writer_inserts_and_selects_and_changes_no_schema(schema: Settings, probe: str) -> None:
    writer = _client(schema.clickhouse)
    writer.execute(f"INSERT INTO {probe} (a) VALUES", [{"a": 7}])
    assert writer.execute(f"SELECT a FROM {probe}") == [(7,)]
    refused = {  # 392 QUERY_IS_PROHIBITED: allow_ddl=0
        "create": "CREATE TABLE writer_table (a UInt8) ENGINE = Memory",
        "create if not exists": f"CREATE TABLE IF NOT EXISTS {probe} (a UInt8) ENGINE = Memory",
        "drop": f"DROP TABLE {probe}",
        "truncate": f"TRUNCATE TABLE {probe}",
        "rename": f"RENAME TABLE {probe} TO {probe}_moved",
        "alter": f"ALTER TABLE {probe} ADD COLUMN b UInt8",
        "mutation": f"ALTER TABLE {probe} DELETE WHERE a = 7",
        "optimize": f"OPTIMIZE TABLE {probe} FINAL",
        "database": "CREATE DATABASE somewhere_else",
        "set allow_ddl": "SET allow_ddl = 1",
    }
    assert {name: _refusal(writer, sql) for name, sql in refused.items()} == dict.fromkeys(refused, 392)
    assert writer.execute(f"SELECT a FROM {probe}") == [(7,)]  # still there, unchanged
    writer.disconnect()
    # `cxj init` pointed at the writer fails, and says where schema changes go.
    as_writer = load_settings(home=schema.home, clickhouse_admin_url=schema.clickhouse_url.get_secret_value())
    with pytest.raises(MigrationError, match="CXJ_CLICKHOUSE_ADMIN_URL"):
        migrate(ClickHouse(as_writer.clickhouse_schema_admin))


def test_no_password_less_user(stack: Settings) -> None:
    bi = stack.clickhouse_bi
    with pytest.raises(ServerException, match=r"194|516|password"):
        Client(bi.host, port=bi.port, user="default", password="").execute("SELECT 1")
