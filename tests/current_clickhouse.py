"""A current ClickHouse in the tests without a server: chDB (the ClickHouse engine in-process) behind the slice of
`sinks.clickhouse.ClickHouse` that migrations, the writer, the report and the checks use.

The local stack runs ClickHouse 18.16; this is how the same SQL is run on a current release (chDB 4.x embeds
ClickHouse 26.x). Also here: a small dataset of every table built from the row classes, the dashboard's panel
SQL with Grafana's macros expanded, and the cluster schema rewritten for one server.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator, Sequence
from copy import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, TypeVar

from clickhouse_driver.util.escape import escape_param, escape_params

from schemas.errors import SinkError
from schemas.rows import (
    AlertOutcomeRow,
    AlertRow,
    CustomerRow,
    DeadLetterRow,
    ErasureRow,
    IdentityConflictRow,
    IdentityLinkRow,
    IdentityOverrideRow,
    JourneyRow,
    SignalRow,
    Table,
    TouchpointRow,
)
from sinks.clickhouse import every_row

__all__ = [
    "DASHBOARD",
    "ChdbClickHouse",
    "Dataset",
    "dashboard_sql",
    "dataset",
    "grafana_sql",
    "row",
    "single_server",
]

DASHBOARD: Final = Path(__file__).resolve().parents[1] / "deploy/compose/grafana/dashboards/cx-journeys.json"


class ChdbClickHouse:
    """One database of a chDB session, answering like `sinks.clickhouse.ClickHouse` (rows as tuples).

    Parameters are substituted client-side with clickhouse-driver's own escaping, as the driver does for the
    real server; an `INSERT ... VALUES` given rows gets them as literals. Values come back as chDB's JSON gives
    them: numbers, strings (also DateTime, Enum), lists. Errors are `SinkError`, as from the real wrapper.
    """

    def __init__(self, session: Any, database: str) -> None:
        self.session = session
        self.database = database

    def run(self, sql: str, params: Any = None) -> tuple[list[str], list[tuple[Any, ...]]]:
        """Column names and rows of one statement."""
        if isinstance(params, list):
            sql = f"{sql} {', '.join(str(escape_param(tuple(r), None)) for r in params)}"
        elif params:
            sql = sql % escape_params(params, None)
        try:
            raw = self.session.query(sql, "JSONCompact").bytes()
        except RuntimeError as exc:  # chdb's ChdbError
            raise SinkError(f"chDB rejected the statement: {str(exc).splitlines()[0]}") from exc
        if not raw:
            return [], []
        result = json.loads(raw)
        return [c["name"] for c in result["meta"]], [tuple(r) for r in result["data"]]

    def execute(
        self, sql: str, params: Any = None, *, external_tables: Sequence[dict[str, Any]] = (), **_: Any
    ) -> list[tuple[Any, ...]]:
        """External tables (clickhouse-driver's) become literal subqueries: chDB takes no external data."""
        for table in external_tables:
            (column, _kind), *rest = table["structure"]
            assert not rest, "one String column, as sinks.customers sends"
            values = ", ".join(str(escape_param(row[column], None)) for row in table["data"]) or "''"
            literal = f"(SELECT arrayJoin([{values}]) AS {column}{' WHERE 0' if not table['data'] else ''})"
            sql = sql.replace(f"FROM {table['name']}", f"FROM {literal}")
        return self.run(sql, params)[1]

    def query(self, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
        return self.execute(sql.replace("{db}", self.database), params)

    def insert(
        self, table: str, columns: Sequence[str], rows: Sequence[tuple[Any, ...]], chunks: Sequence[Any] = ()
    ) -> int:
        """`<db>.<table>` gets `rows` (tuples in `columns` order) and the core's `chunks`, as `ClickHouse.insert`."""
        every = every_row(rows, chunks)
        if every:
            self.execute(f"INSERT INTO {self.database}.{table} ({', '.join(columns)}) VALUES", every)
        return len(every)


# --- rows ---------------------------------------------------------------------------------------

_DEFAULTS: Final[dict[str, Any]] = {"str": "", "int": 0, "float": 0.0, "list[str]": []}
R = TypeVar("R", bound=tuple[Any, ...])


def row(cls: type[R], **values: Any) -> R:
    """A row of `cls` with `values`; every other field empty (`''`, 0, `[]`, or NULL where nullable)."""
    # The row modules postpone annotations: each is its source text (a str, or a ForwardRef holding it).
    fields = {name: str(getattr(kind, "__forward_arg__", kind)) for name, kind in cls.__annotations__.items()}
    filled = {name: None if "None" in kind else copy(_DEFAULTS[kind]) for name, kind in fields.items()}
    unknown = set(values) - set(fields)
    if unknown:
        raise TypeError(f"{cls.__name__} has no field {sorted(unknown)}")
    return cls(**{**filled, **values})


@dataclass(frozen=True)
class Dataset:
    """A few rows per table, by table, and when they happened (`base`, epoch seconds)."""

    base: int
    rows: dict[str, list[tuple[Any, ...]]]

    def without(self, table: Table) -> Dataset:
        return Dataset(self.base, {t: r for t, r in self.rows.items() if t != table})

    def with_rows(self, table: Table, rows: list[tuple[Any, ...]]) -> Dataset:
        return Dataset(self.base, {**self.rows, table: rows})


def dataset(base: int | None = None) -> Dataset:
    """Every query and check has something to read, and every check passes.

    C-1 is at high risk: three dissatisfying experiences (one raised under C-3, which merged into C-1 and has an
    identity override), one alert, and an unhappy survey answer. C-2 is satisfied, kept informed, and says so.
    One journey of each key, one dead letter, one erasure.
    Two days ago by default, so that the last-7-days dashboard and the 90-day queries see all of it.
    """
    t = int(time.time()) - 2 * 86_400 if base is None else base
    negatives = [("e-1", "C-1", t), ("e-2", "C-3", t + 3600), ("e-3", "C-1", t + 7200)]
    signals = [
        row(SignalRow, event_id=e, customer_key=k, experience_key=f"event:{e}", signal="long_wait", polarity=-1,
            dimension="respect", channel="phone", event_type="contact_ended", occurred_at=at,
            journey_id="service:K-1@C-1")
        for e, k, at in negatives
    ]  # fmt: skip
    signals.append(row(SignalRow, event_id="e-4", customer_key="C-2", experience_key="event:e-4",
                       signal="proactive_update", polarity=1, dimension="transparency", channel="sms",
                       event_type="notification_sent", occurred_at=t))  # fmt: skip
    touchpoints = [
        row(TouchpointRow, event_id=s.event_id, customer_key=s.customer_key, channel=s.channel,
            event_type=s.event_type, occurred_at=s.occurred_at, occurred_ms=s.occurred_at * 1000,
            received_at=s.occurred_at, source="test", experience_key=s.experience_key, journey_id=s.journey_id,
            signals=[s.signal], wait_seconds=900.0 if s.polarity < 0 else None, attributes="{}", schema_version=1)
        for s in signals
    ]  # fmt: skip
    # Two survey answers: C-1 rates the call nobody answered (e-1), C-2 the order it was kept informed of (e-4).
    touchpoints += [
        row(TouchpointRow, event_id=e, customer_key=k, channel="survey", event_type="survey_response",
            occurred_at=t + 60, occurred_ms=(t + 60) * 1000, received_at=t + 60, source="test", experience_key=x,
            csat=csat, nps=nps, ces=ces, attributes="{}", schema_version=1)
        for e, k, x, csat, nps, ces in (("e-5", "C-1", "event:e-1", 2, 3, 2), ("e-6", "C-2", "event:e-4", 5, 10, 6))
    ]  # fmt: skip
    last = t + 7200
    customers = [
        row(CustomerRow, customer_key="C-1", dissatisfied_90d=3, experience_score=20.0, churn_risk="high",
            last_event_at=last, version=3, lifetime_value=500.0, experiences=3, open_journeys=1, updated_at=last),
        row(CustomerRow, customer_key="C-2", satisfied_90d=1, experience_score=80.0, churn_risk="none",
            last_event_at=t, version=1, lifetime_value=50.0, experiences=1, updated_at=t),
        row(CustomerRow, customer_key="C-3", dissatisfied_90d=1, experience_score=60.0, churn_risk="low",
            last_event_at=t + 3600, version=2, experiences=1, merged_into="C-1", updated_at=t + 3600),
    ]  # fmt: skip
    journeys = [
        row(JourneyRow, journey_id="service:K-1@C-1", customer_key="C-1", journey_type="service", status="open",
            started_at=t, last_event_at=last, touchpoints=2, channels=["phone"], dissatisfying=1, version=2,
            updated_at=last),
        row(JourneyRow, journey_id="browse:W-1@C-3", customer_key="C-3", journey_type="browse", status="abandoned",
            started_at=t + 3600, ended_at=t + 3700, last_event_at=t + 3600, touchpoints=1, channels=["phone"],
            dissatisfying=1, version=1, updated_at=t + 3700),
    ]  # fmt: skip
    alert = row(AlertRow, alert_id="A-1", customer_key="C-1", level="high", previous_level="elevated",
                dissatisfied_90d=3, experience_keys=["event:e-1", "event:e-2", "event:e-3"], signals=["long_wait"],
                dimensions=["respect"], triggered_at=last, lifetime_value=500.0, emitted_at=last + 1,
                actions=["personal_callback"], action_texts=["A person calls back"])  # fmt: skip
    return Dataset(t, {
        Table.TOUCHPOINTS: touchpoints,
        Table.EXPERIENCE_SIGNALS: signals,
        Table.CUSTOMER_EXPERIENCE: customers,
        Table.CHURN_ALERTS: [alert],
        Table.JOURNEYS: journeys,
        Table.IDENTITY_LINKS: [row(IdentityLinkRow, identifier="phone:h-3", identifier_type="phone",
                                   customer_key="C-1", previous_key="C-3", linked_at=t + 1800, event_id="e-2",
                                   version=1)],
        Table.IDENTITY_OVERRIDES: [row(IdentityOverrideRow, stitched_key="C-3", customer_key="C-1",
                                       merged_at=t + 1800, version=1)],
        Table.IDENTITY_CONFLICTS: [row(IdentityConflictRow, identifier="email:h-9", existing_key="C-1",
                                       claimed_key="C-2", reason="claimed", event_id="e-4", occurred_at=t,
                                       detected_at=t)],
        Table.DEAD_LETTERS: [row(DeadLetterRow, received_at=t, topic="cx.touchpoints", offset=10,
                                 reason="invalid_json", detail="Expecting value", raw="{not json",
                                 payload_hash="h-1")],
        Table.ERASURES: [row(ErasureRow, request_id="r-1", stage="clickhouse", partition=-1, expected=1,
                             erased=0, done_at=t)],
        # A-1 was pending, then C-1 recovered (the later version wins).
        Table.ALERT_OUTCOMES: [
            row(AlertOutcomeRow, alert_id="A-1", customer_key="C-1", triggered_at=last, outcome="pending",
                version=1, updated_at=last + 1),
            row(AlertOutcomeRow, alert_id="A-1", customer_key="C-1", triggered_at=last, outcome="recovered",
                decided=1, outcome_at=last + 3600, version=2, updated_at=last + 3601),
        ],
    })  # fmt: skip


# --- Grafana -------------------------------------------------------------------------------------


def grafana_sql(sql: str, database: str) -> str:
    """A panel's SQL as Grafana's ClickHouse plugin sends it for the dashboard's default range, last 7 days
    (the expansion tests/integration/test_bi.py uses on 18.16), on `database` instead of `cx`."""
    sql = re.sub(r"\$__timeFilter\((\w+)\)", r"\1 >= now() - 7 * 86400", sql)
    sql = re.sub(r"\$__dateFilter\((\w+)\)", r"\1 >= today() - 7", sql)
    if "$__" in sql:
        raise ValueError(f"a Grafana macro this helper does not expand: {sql}")
    return re.sub(r"\bcx\.", f"{database}.", sql)


def dashboard_sql(path: Path = DASHBOARD) -> Iterator[tuple[str, str]]:
    """(panel title, raw SQL) of every ClickHouse query of the dashboard, nested rows included."""

    def panels(items: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        for panel in items:
            yield panel
            yield from panels(panel.get("panels", []))

    for panel in panels(json.loads(path.read_text())["panels"]):
        for target in panel.get("targets", []):
            if "rawSql" in target:
                yield panel["title"], target["rawSql"]


# --- the cluster schema on one server -------------------------------------------------------------

_ON_CLUSTER: Final = re.compile(r" ON CLUSTER '[^']*'")
_REPLICATED: Final = re.compile(r"ENGINE = Replicated(\w*MergeTree)\('[^']*', '[^']*'(?:, )?")
_DISTRIBUTED: Final = re.compile(r"ENGINE = Distributed\('[^']*', '([^']*)', '(\w+)', [^\n]*\)$")


def single_server(statement: str) -> str:
    """A statement of `cluster_schema` for one server without ZooKeeper or a cluster: no ON CLUSTER, each
    Replicated*MergeTree its plain engine (same arguments after the ZooKeeper path and replica name), and each
    Distributed table a Merge table over its local table, so the views and materialized views on top are built."""
    statement = _ON_CLUSTER.sub("", statement)
    statement = _REPLICATED.sub(r"ENGINE = \1(", statement)
    return _DISTRIBUTED.sub(r"ENGINE = Merge('\1', '^\2$')", statement)
