"""The schema and every query on a current ClickHouse (chDB, in-process), as the integration tests run them on 18.16.

Every migration through `migrate` (which picks each migration's `.current.sql` file where 18.16 and current
releases need different SQL), migration 0007's rewrite of rows written before it, the cluster schema on one
server (every statement parsed; everything created, Replicated engines made plain and Distributed tables made
Merge tables), every analyst query and check as cxj report and cxj check run them, and every Grafana panel query.
No network: chDB is the ClickHouse engine in this process.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any

import pytest

from cxj.check import run_checks
from cxj.report import collect
from cxj.report_html import collect_html
from schemas.rows import ROWS_BY_TABLE, AlertRow, CustomerRow, JourneyRow, Table
from schemas.settings import Settings
from sinks import customers, queries
from sinks.cluster import cluster_schema
from sinks.migrate import CURRENT, LEGACY, applied, engine_of, load_migrations, migrate, split_statements
from sinks.queries import checks
from sinks.writer import Batch, ClickHouseWriter
from tests.current_clickhouse import ChdbClickHouse, Dataset, dashboard_sql, dataset, grafana_sql, row, single_server

chdb_session = pytest.importorskip("chdb.session", reason="chdb is not installed: pip install -e '.[dev]'")

# cxj check's parameters at their defaults (the two settings run_checks reads).
CHECK_SETTINGS = SimpleNamespace(
    window_days=Settings.model_fields["window_days"].default,
    anonymous_alert_hold_seconds=Settings.model_fields["anonymous_alert_hold_seconds"].default,
)
# What each analyst query returns: cxj report, the HTML report and the docs read these columns by position.
EXPECTED_COLUMNS = {
    "dead_letters_by_reason": ["reason", "dead_letters"],
    "dimensions_daily": ["day", "dimension", "negative", "positive"],
    "dissatisfaction_by_channel_signal": ["channel", "signal", "dimension", "experiences", "touchpoints", "customers"],
    "journey_funnel": ["journey_type", "status", "journeys", "avg_touchpoints", "dissatisfying_share"],
    "latest_alerts": ["triggered_at", "customer_key", "dissatisfied_90d", "experience_keys", "signals",
                      "lifetime_value"],
    "recovery_by_breakdown": ["breakdown", "value", "alerts", "decided_alerts", "recovered", "relapsed", "lost",
                              "unresolved", "watching", "recovery_pct"],
    "recovery_by_proactive_update": ["proactive_update", "alerts", "decided_alerts", "recovered", "recovery_pct"],
    "report_totals": ["touchpoints", "dead_letters", "customers", "alerts", "journeys"],
    "risk_daily": ["day", "level", "customers"],
    "risk_distribution": ["churn_risk", "customers", "avg_score", "lifetime_value"],
    "satisfaction_by_channel_week": ["week", "channel", "csat_responses", "csat_pct", "nps_responses", "nps_points",
                                     "ces_responses", "ces_mean", "ces_easy_pct"],
    "satisfaction_by_dimension": ["dimension", "csat_responses", "csat_pct", "nps_responses", "nps_points",
                                  "ces_responses", "ces_mean"],
    "satisfaction_by_proactive_update": ["proactive_update", "customers", "csat_responses", "csat_pct",
                                         "nps_responses", "nps_points"],
    "top_at_risk_customers": ["customer_key", "lifetime_value", "strikes", "score", "experiences", "signals"],
}  # fmt: skip


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One chDB session for the module (chDB holds one at a time); each test works in databases of its own."""
    chdb = chdb_session.Session(str(tmp_path_factory.mktemp("chdb")))
    try:
        yield chdb
    finally:
        chdb.close()


def _database(session: Any, name: str) -> ChdbClickHouse:
    """A new, empty database, created as the administrator does before `migrate` (ensure_database)."""
    session.query(f"CREATE DATABASE {name}")
    return ChdbClickHouse(session, name)


def _write(ch: ChdbClickHouse, data: Dataset) -> None:
    """Store `data` through the pipeline's writer; every row must land (a refused row would be a dead letter)."""
    written = ClickHouseWriter(ch).write(Batch(dict(data.rows), 0))  # type: ignore[arg-type]
    assert written == {table: len(rows) for table, rows in data.rows.items()}


def _migrated(session: Any, name: str, data: Dataset) -> ChdbClickHouse:
    ch = _database(session, name)
    migrate(ch)  # type: ignore[arg-type]
    _write(ch, data)
    return ch


@pytest.fixture(scope="module")
def data() -> Dataset:
    """`dataset()`, once: its times are relative to now."""
    return dataset()


@pytest.fixture(scope="module")
def clean(session: Any, data: Dataset) -> ChdbClickHouse:
    """The schema as `cxj init` migrates it, holding `data`: every check passes on it."""
    return _migrated(session, "cx_clean", data)


# --- the engine and the migration files -------------------------------------------------------------


def test_chdb_is_a_current_clickhouse(session: Any) -> None:
    [(version,)] = ChdbClickHouse(session, "default").execute("SELECT version()")
    assert engine_of(version) == CURRENT and int(version.split(".")[0]) >= 24, version
    assert engine_of("18.16.1") == LEGACY and engine_of("24.8.6.70") == CURRENT


def test_the_current_variants_differ_from_the_18_16_files_only_in_naming_joined_subqueries() -> None:
    """Where a migration has a `.current.sql` file, it is the 18.16 file with `AS <name>` after the joined
    subqueries and nothing else, so the two engines keep the same schema."""
    legacy = {m.version: m for m in load_migrations(engine=LEGACY)}
    current = {m.version: m for m in load_migrations(engine=CURRENT)}
    assert legacy.keys() == current.keys()
    differ = {v for v in legacy if legacy[v].sql != current[v].sql}
    assert differ == {2, 7, 9}
    for version in differ:
        unnamed = [re.sub(r"\) AS (stitched|overrides)\b", ")", s) for s in split_statements(current[version].sql)]
        assert unnamed == split_statements(legacy[version].sql)
        assert current[version].recorded_as(legacy[version].checksum)  # a server upgraded from 18.16


def test_every_migration_applies_on_current_through_migrate(session: Any) -> None:
    ch = _database(session, "cx_fresh")
    ran = migrate(ch)  # type: ignore[arg-type]
    assert ran == load_migrations(engine=CURRENT)
    assert applied(ch) == {m.version: m.checksum for m in ran}  # type: ignore[arg-type]
    assert migrate(ch) == []  # type: ignore[arg-type]
    tables = {name for (name,) in ch.query("SELECT name FROM system.tables WHERE database = '{db}'")}
    assert {str(t) for t in Table} | {"touchpoints_resolved", "churn_alerts_resolved", "journeys_resolved",
                                      "signals_hourly_mv", "erasure_subjects"} <= tables  # fmt: skip


def test_a_server_upgraded_from_18_16_keeps_its_ledger(session: Any) -> None:
    """The ledger of an 18.16 server records the 18.16 files' checksums; on a current release they still count."""
    ch = _database(session, "cx_upgraded")
    applied(ch)  # type: ignore[arg-type]  # creates the ledger
    ch.execute(
        "INSERT INTO cx_upgraded.schema_migrations (version, name, checksum) VALUES",
        [(m.version, m.name, m.checksum) for m in load_migrations(engine=LEGACY)],
    )
    assert migrate(ch) == []  # type: ignore[arg-type]


def test_migration_0007_rewrites_journeys_written_before_it(session: Any) -> None:
    """Each old journey once, under `<anchor>@<customer_key>`; the rewrite run again changes nothing
    (tests/integration/test_writer.py checks the same on 18.16)."""
    ch = _database(session, "cx_0007")
    migrations = load_migrations(engine=CURRENT)
    migrate(ch, [m for m in migrations if m.version < 7])  # type: ignore[arg-type]
    migrations = [m for m in migrations if m.version <= 7]
    key, t = "C-7", 1_700_000_000

    def journey(jid: str, touchpoints: int, merged_into: str = "", **values: Any) -> JourneyRow:
        fields = {"journey_type": "browse", "status": "abandoned", **values}
        return row(JourneyRow, journey_id=jid, customer_key=key, started_at=t, ended_at=t, last_event_at=t,
                   touchpoints=touchpoints, channels=["web"], merged_into=merged_into, version=5, updated_at=t,
                   **fields)  # fmt: skip

    old = [journey("purchase:O-1", 4, journey_type="purchase", status="completed"), journey("browse:a", 3),
           journey("browse:b", 0, "browse:a")]  # fmt: skip
    _write(ch, Dataset(t, {Table.JOURNEYS: old}))
    assert [m.version for m in migrate(ch, migrations)] == [7]  # type: ignore[arg-type]
    [rewrite] = [m for m in migrations if m.version == 7]
    for statement in split_statements(rewrite.sql):
        if statement.startswith("INSERT INTO {db}.journeys"):
            ch.query(statement)  # again: re-runnable
    rows = ch.query("SELECT journey_id, touchpoints, merged_into FROM {db}.journeys FINAL ORDER BY journey_id")
    assert rows == [
        ("browse:a", 0, f"browse:a@{key}"),
        (f"browse:a@{key}", 3, ""),
        ("browse:b", 0, f"browse:b@{key}"),
        (f"browse:b@{key}", 0, f"browse:a@{key}"),
        ("purchase:O-1", 0, f"purchase:O-1@{key}"),
        (f"purchase:O-1@{key}", 4, ""),
    ]


def test_the_per_customer_tables_hold_each_customers_rows_and_the_profile_reads_them(clean: ChdbClickHouse) -> None:
    """Migration 0008's materialized views copy every row the writer stores, by customer key; the profile's
    queries run on a current ClickHouse and a merged-away key resolves to its customer."""
    for table, source in (("touchpoints_by_customer", "touchpoints"), ("signals_by_customer", "experience_signals"),
                          ("journeys_by_customer", "journeys"), ("alerts_by_customer", "churn_alerts")):  # fmt: skip
        copied = clean.query(f"SELECT customer_key, count() FROM {{db}}.{table} GROUP BY customer_key ORDER BY 1")
        stored = clean.query(f"SELECT customer_key, count() FROM {{db}}.{source} GROUP BY customer_key ORDER BY 1")
        assert copied == stored and copied, table
    settings = Settings(pii_secret="s" * 32)
    who = customers.resolve(clean, settings, "C-3")  # type: ignore[arg-type]
    assert who is not None and (who.key, who.keys) == ("C-1", ("C-1", "C-3"))
    assert who.state is not None and who.state.dissatisfied_90d == 3
    for name, sql in customers.QUERIES.items():
        rows = customers.select_values(clean, sql, who.keys)  # type: ignore[arg-type]
        assert rows, name
    [together] = customers.select_values(clean, customers.PROFILE, who.keys)  # type: ignore[arg-type]
    assert [len(part) for part in together] == [
        len(customers.select_values(clean, sql, who.keys))  # type: ignore[arg-type]
        for sql in customers.QUERIES.values()
    ]
    alerts = customers.select_values(clean, customers.QUERIES["alerts"], who.keys)  # type: ignore[arg-type]
    assert [(a[0], list(a[7]), list(a[8])) for a in alerts] == [
        ("A-1", ["personal_callback"], ["A person calls back"])  # migration 0009's columns, copied per customer
    ]
    nobody = customers.resolve(clean, settings, "nobody")  # type: ignore[arg-type]
    assert nobody is not None and nobody.state is None


def test_the_resolved_views_show_a_merged_keys_rows_under_its_customer(clean: ChdbClickHouse) -> None:
    journeys = clean.query("SELECT journey_id, customer_key, stitched_key FROM {db}.journeys_resolved ORDER BY 1")
    assert journeys == [("browse:W-1@C-3", "C-1", "C-3"), ("service:K-1@C-1", "C-1", "C-1")]
    signals = clean.query("SELECT event_id, customer_key FROM {db}.experience_signals_resolved ORDER BY 1")
    assert signals == [("e-1", "C-1"), ("e-2", "C-1"), ("e-3", "C-1"), ("e-4", "C-2")]
    assert clean.query("SELECT customer_key FROM {db}.touchpoints_resolved WHERE event_id = 'e-2'") == [("C-1",)]


# --- the cluster schema -----------------------------------------------------------------------------


def test_every_cluster_statement_parses_on_current(session: Any) -> None:
    ch = ChdbClickHouse(session, "default")
    statements = split_statements(cluster_schema("cx", "cx"))
    for statement in statements:
        assert ch.execute(f"EXPLAIN AST {statement}"), statement[:120]
    assert len(statements) > 30


def test_the_cluster_schema_builds_on_one_current_server_and_answers_as_the_single_node_one(
    session: Any, data: Dataset, clean: ChdbClickHouse
) -> None:
    """Everything but ZooKeeper and the cluster is created: the local tables (Replicated engines made plain),
    their materialized views, Merge tables in place of the Distributed ones, the views over those. The local
    tables hold what the single-node schema holds, and every analyst query then answers the same."""
    ch = _database(session, "cx_cluster")
    for statement in split_statements(cluster_schema(ch.database, "cx")):
        ch.execute(single_server(statement))
    engines = dict(ch.query("SELECT name, engine FROM system.tables WHERE database = '{db}'"))
    assert engines["customer_experience_local"] == "ReplacingMergeTree" and engines["customer_experience"] == "Merge"
    assert engines["erasure_subjects"] == "MergeTree" and engines["churn_alerts_resolved"] == "View"
    for table, rows in data.rows.items():
        ch.insert(f"{table}_local", ROWS_BY_TABLE[Table(table)]._fields, rows)
    for name in queries.names():
        assert ch.query(queries.load(name, ch.database)) == clean.query(queries.load(name, clean.database)), name


# --- analyst queries, the reports, the checks, Grafana -----------------------------------------------


def test_every_analyst_query_has_its_expected_columns() -> None:
    assert set(EXPECTED_COLUMNS) == set(queries.names())


@pytest.mark.parametrize("name", queries.names())
def test_every_analyst_query_runs_on_current(clean: ChdbClickHouse, name: str) -> None:
    columns, rows = clean.run(queries.load(name, clean.database))
    assert columns == EXPECTED_COLUMNS[name]
    assert rows, f"{name} returned nothing on data for every table"


def test_satisfaction_is_measured_as_analysts_measure_it(clean: ChdbClickHouse) -> None:
    """CSAT share of 4-5, NPS promoters minus detractors in points, CES mean and share of easy (5-7), with the
    responses behind each: C-1 answered 2 / 3 / 2 about the call nobody answered, C-2 5 / 10 / 6 about the
    order it was kept informed of."""
    [week] = clean.query(queries.load("satisfaction_by_channel_week", clean.database))
    assert week[1:] == ("survey", 2, 50.0, 2, 0.0, 2, 4.0, 50.0)
    by_dimension = clean.query(queries.load("satisfaction_by_dimension", clean.database))
    assert by_dimension == [("respect", 1, 0.0, 1, -100.0, 1, 2.0), ("transparency", 1, 100.0, 1, 100.0, 1, 6.0)]
    informed = clean.query(queries.load("satisfaction_by_proactive_update", clean.database))
    assert informed == [(0, 1, 1, 0.0, 1, -100.0), (1, 1, 1, 100.0, 1, 100.0)]


def test_recovery_is_rolled_up_by_first_signal_channel_dimension_and_action(clean: ChdbClickHouse) -> None:
    """A-1 (C-1's alert: long_wait by phone first, respect, a personal call back recommended) was pending, then
    recovered: the later version counts, once under each breakdown; nobody was kept informed after it."""
    rollup = clean.query(queries.load("recovery_by_breakdown", clean.database))
    once = (1, 1, 1, 0, 0, 0, 0, 100.0)
    assert rollup == [("action", "personal_callback", *once), ("channel", "phone", *once),
                      ("dimension", "respect", *once), ("first_signal", "long_wait", *once)]  # fmt: skip
    informed = clean.query(queries.load("recovery_by_proactive_update", clean.database))
    assert informed == [(0, 1, 1, 1, 100.0)]


def test_the_reports_read_their_figures_on_current(clean: ChdbClickHouse) -> None:
    report = collect(clean)  # type: ignore[arg-type]
    totals = (report.touchpoints, report.dead_letters, report.customers, report.alerts, report.journeys)
    assert totals == (6, 1, 2, 1, 2)
    assert report.customers_at("high") == 1 and report.customers_at("none") == 1
    assert [(a[1], a[2]) for a in report.latest_alerts] == [("C-1", 3)]
    assert report.rejections == [("invalid_json", 1)]
    html = collect_html(clean)  # type: ignore[arg-type]
    assert html.top_customers == [("C-1", 500.0, 3, 20.0, ["event:e-1", "event:e-2", "event:e-3"], ["long_wait"])]
    assert html.dimensions["respect"] == (3, 0) and html.dimensions["transparency"] == (0, 1)
    assert {(t, s, n) for t, s, n, _, _ in html.funnel} == {("browse", "abandoned", 1), ("service", "open", 1)}


def test_every_check_passes_on_clean_data(clean: ChdbClickHouse) -> None:
    results = run_checks(clean, CHECK_SETTINGS)  # type: ignore[arg-type]
    assert [r.name for r in results] == checks.names()
    assert [(r.name, r.failures) for r in results if not r.ok] == []


def _second_alert(data: Dataset) -> Dataset:
    [first] = data.rows[Table.CHURN_ALERTS]
    assert isinstance(first, AlertRow)
    second = first._replace(alert_id="A-2", triggered_at=first.triggered_at + 100)
    return data.with_rows(Table.CHURN_ALERTS, [first, second])


def _miscounted(data: Dataset) -> Dataset:
    customers = [c._replace(dissatisfied_90d=5) if isinstance(c, CustomerRow) and c.customer_key == "C-1" else c
                 for c in data.rows[Table.CUSTOMER_EXPERIENCE]]  # fmt: skip
    return data.with_rows(Table.CUSTOMER_EXPERIENCE, customers)


def _unwatched(data: Dataset) -> Dataset:
    """An alert emitted after migration 0010 with no outcome (A-1's has one; a later one has none)."""
    [first] = data.rows[Table.CHURN_ALERTS]
    assert isinstance(first, AlertRow)
    late = first._replace(alert_id="A-9", emitted_at=int(time.time()) + 3600)
    return data.with_rows(Table.CHURN_ALERTS, [first, late])


# Each check, the clean data broken the way it detects, and the key it names.
BROKEN: dict[str, tuple[Callable[[Dataset], Dataset], str]] = {
    "high_risk_without_alert": (lambda d: d.without(Table.CHURN_ALERTS), "C-1"),
    "two_alerts_one_episode": (_second_alert, "C-1"),
    "dissatisfied_recount": (_miscounted, "C-1"),
    "left_under_merged_keys": (lambda d: d.without(Table.IDENTITY_OVERRIDES), "C-3"),
    "alert_without_outcome": (_unwatched, "C-1"),
}


@pytest.mark.parametrize("name", checks.names())
def test_every_check_finds_what_it_checks_on_current(session: Any, name: str) -> None:
    broken, example = BROKEN[name]
    ch = _migrated(session, f"cx_broken_{name}", broken(dataset()))
    [result] = [r for r in run_checks(ch, CHECK_SETTINGS) if r.name == name]  # type: ignore[arg-type]
    assert (result.failures, result.example) == (1, example)


@pytest.mark.parametrize(("title", "sql"), list(dashboard_sql()), ids=lambda v: v if len(v) < 60 else "sql")
def test_every_grafana_panel_query_runs_on_current(clean: ChdbClickHouse, title: str, sql: str) -> None:
    assert clean.execute(grafana_sql(sql, clean.database)), f"panel {title!r} shows nothing on data for every table"


def test_the_dashboard_has_its_clickhouse_panels_and_their_macros_expand() -> None:
    assert len(list(dashboard_sql())) >= 6
    sql = grafana_sql("SELECT 1 FROM cx.t WHERE $__timeFilter(hour) AND $__dateFilter(day)", "x")
    assert sql == "SELECT 1 FROM x.t WHERE hour >= now() - 7 * 86400 AND day >= today() - 7"
    with pytest.raises(ValueError, match="macro"):
        grafana_sql("SELECT $__timeInterval(hour)", "x")
