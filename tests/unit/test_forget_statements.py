"""What `cxj forget` sends ClickHouse (a recording fake): no text names the customer, and the subjects
outlive every mutation that reads them."""

from __future__ import annotations

from typing import Any

import pytest

from cxj.erasure import ErasurePlan, deletions
from cxj.forget import _erase
from schemas.errors import StackError
from sinks.clickhouse import ClickHouse

PLAN = ErasurePlan("C-1", ("anon:a-1", "phone:h1"), ("C-1", "~anon:a-1", "~phone:h1"), ("j-1",))
REQUEST = "0123456789abcdef0123456789abcdef"
VALUES = ("C-1", "a-1", "h1", "j-1")


class Recording:
    """Answers like a server holding one row per table until a mutation of that table is done."""

    database = "cx"

    def __init__(self, *, mutations_finish: bool = True, settings: tuple[str, ...] = ()) -> None:
        self.texts: list[str] = []  # every statement's text, with its parameters
        self.inserted: list[tuple[str, list[tuple[Any, ...]]]] = []
        self.mutated: set[str] = set()
        self.mutations_finish = mutations_finish
        self.settings = settings  # what system.settings lists (18.16: none of those forget sends)
        self.sent_settings: list[dict[str, Any]] = []

    def query(self, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
        sql = sql.replace("{db}", self.database)
        self.texts.append(f"{sql} {params!r}")
        if "system.settings" in sql:
            return [(name,) for name in self.settings]
        if "system.one" in sql:
            return [(2,)]  # two servers
        if "clusterAllReplicas" in sql and "erasure_subjects" in sql:
            return [(2 * len(self.inserted[0][1]),)]
        if "system.mutations" in sql:
            return [] if self.mutations_finish else [("touchpoints", 1)]
        table = sql.split(" FROM cx.", 1)[1].split()[0]
        return [(0 if table in self.mutated and self.mutations_finish else 1,)]

    def execute(self, sql: str, params: Any = None, **kwargs: Any) -> Any:
        self.texts.append(f"{sql} {params!r} {kwargs!r}")
        self.mutated.add(sql.split("ALTER TABLE cx.", 1)[1].split()[0].removesuffix("_local"))
        self.sent_settings.append(kwargs.get("settings") or {})
        return []

    def insert(self, table: str, columns: Any, rows: list[tuple[Any, ...]]) -> int:
        self.inserted.append((table, list(rows)))
        self.texts.append(f"INSERT INTO cx.{table} VALUES")
        return len(rows)


def erase(ch: Recording, cluster: str | None = None) -> dict[str, int]:
    fake: Any = ch  # duck-typed ClickHouse
    client: ClickHouse = fake
    return _erase(client, PLAN, REQUEST, cluster, timeout=0, sleep=lambda _: None)


def test_the_values_travel_as_data_and_every_text_names_only_the_request() -> None:
    ch = Recording()
    before = erase(ch)
    tables = {table for table, _ in deletions(PLAN, REQUEST, "cx")}  # every table holding a customer
    assert set(before.values()) == {1} and set(before) == tables and len(tables) == 16
    assert [table for table, _ in ch.inserted] == ["erasure_subjects"]
    assert {v for _, _, v in ch.inserted[0][1]} >= set(PLAN.keys) | set(PLAN.identifiers)
    leaked = [t for t in ch.texts if any(v in t for v in VALUES)]
    assert leaked == []
    # Subjects first, deletions next, and the subjects' own deletion last, once every mutation is done.
    assert ch.texts[0].startswith("INSERT INTO cx.erasure_subjects")
    alters = [t for t in ch.texts if t.startswith("ALTER")]
    assert len(alters) == len(tables) + 1 and alters[-1].startswith(
        "ALTER TABLE cx.erasure_subjects DELETE WHERE request_id = "
    )


def test_subjects_stay_while_mutations_still_need_them() -> None:
    ch = Recording(mutations_finish=False)
    with pytest.raises(StackError, match=r"rows stay in cx\.erasure_subjects"):
        erase(ch)
    assert "erasure_subjects" not in ch.mutated


def test_on_a_cluster_the_shards_mutate_once_every_server_holds_the_subjects() -> None:
    ch = Recording(settings=("allow_nondeterministic_mutations", "mutations_execute_subqueries_on_initiator"))
    erase(ch, cluster="cx")
    alters = [t for t in ch.texts if t.startswith("ALTER")]
    assert all(" ON CLUSTER 'cx' " in t and "_local" in t for t in alters[:-1])
    # The subjects table is one replicated table, not sharded: its own cleanup is one plain mutation.
    assert alters[-1].startswith("ALTER TABLE cx.erasure_subjects DELETE") and "ON CLUSTER" not in alters[-1]
    # Replicated tables take a subquery in a mutation only when allowed; nothing runs it on the initiator.
    assert ch.sent_settings[0] == {
        "allow_nondeterministic_mutations": 1,
        "mutations_execute_subqueries_on_initiator": 0,
    }
    assert not any(v in t for t in ch.texts for v in VALUES)
