"""`cxj forget CUSTOMER`: erase a customer from worker state, identity links and every ClickHouse table.

The order makes the erasure stick:

1. The subject is resolved to the customer's current key (an identifier or an anonymous key resolves to the
   customer it was linked to: one person is forgotten whole).
2. A forget request goes to the identity arbiter over `cx.internal.claims`, in order with the link claims.
   The arbiter unlinks the identifiers (tombstones on the compacted `cx.identity.links`, so every worker's
   replica drops them and compaction removes them) and sends each key's stitch partition a forget item; the
   partition drops the state or forward and writes a changelog tombstone (compaction removes it too).
   Each step acknowledges in `cx.erasures`, which the writer stores after every other table of its flush.
3. Only when every acknowledgement is in does the command read what the key owns (every identifier ever linked
   to it, every key merged into it, their journeys) and delete from ClickHouse (`ALTER TABLE … DELETE`
   mutations, waited for): no row or link the workers still held in memory can appear after the delete.
   Dead letters go by the keys and identifiers ingest recorded in their `subjects`, and those that are not
   JSON (no subjects) by their text, in any case, padded or JSON-escaped (`cxj.erasure.text_pattern`).
4. It checks that nothing about the keys is left, removes the request's `erasure_subjects`, and records the
   request in `cx.erasures` — with counts, never the keys.

No statement's text names the customer (18.16 shows every user the text of mutations, logged queries and
running ones): lookups send the values as an external table, deletions read them from `erasure_subjects`
by request id (`cxj.erasure`).

A customer who comes back after this is a new customer. What stays, by design: `signals_hourly`
(distinct-count states of hashed keys, anonymous aggregates) and the Kafka input, DLQ and alert topics until
their retention passes (7 and 30 days); see the README.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Final

from cxj.erasure import SUBJECTS_TABLE, ErasurePlan, delete_statement, deletions, subject_rows
from schemas.errors import ConfigError, StackError
from schemas.records import ForgetRequest
from schemas.settings import Settings
from sinks.clickhouse import ClickHouse
from sinks.customers import identifier_of, linked_key, printable, select_values
from streams.domain.codec import encode_forget
from streams.domain.identity import ANON_PREFIX, is_anonymous, self_key
from streams.runtime.topics import CLAIMS

__all__ = ["ForgetReport", "forget", "identifier_of", "plan", "resolve"]

# A request's rows outlive its run only when the run stopped while mutations still needed them.
_STALE_SECONDS: Final = 86_400
# Settings for the mutations, sent where the server knows them (18.16 knows none and refuses unknown ones).
_MUTATION_SETTINGS: Final = {
    # Replicated tables refuse a mutation with a subquery unless told; it is deterministic here, since the
    # subjects are on every replica before the mutation is issued and stay until it is done.
    "allow_nondeterministic_mutations": 1,
    # Would run the subqueries once and write their results, the very keys, into the mutation's text.
    "mutations_execute_subqueries_on_initiator": 0,
    "mutations_execute_nondeterministic_on_initiator": 0,
}


@dataclass
class ForgetReport:
    request_id: str
    key: str
    identifiers: int
    keys: int
    rows: dict[str, int] = field(default_factory=dict)
    state_entries: int = 0
    seconds: float = 0.0


def resolve(ch: ClickHouse, settings: Settings, customer: str | None, identifier: str | None) -> str:
    """The key to forget: a customer key as stored (customer_id or `~kind:value`), or the key an identifier
    (or an anonymous key merged since) resolves to."""
    if (customer is None) == (identifier is None):
        raise ConfigError("give exactly one of: a customer key, or --identifier kind:value")
    if customer is not None:
        key = printable(customer, "customer key")
        if not is_anonymous(key):
            return key
        identifier = key[len(ANON_PREFIX) :]
    else:
        assert identifier is not None
        identifier = identifier_of(identifier, settings)
    return linked_key(ch, identifier, cluster=settings.clickhouse_cluster is not None)


def _owned(ch: ClickHouse, select: str, keys: Iterable[str]) -> set[str]:
    """The values `select` (`SELECT DISTINCT column FROM table`) finds in the rows of any of `keys`."""
    rows = select_values(ch, f"{select} WHERE customer_key GLOBAL IN (SELECT value FROM _values)", keys)  # noqa: S608
    return {str(r[0]) for r in rows}


def plan(ch: ClickHouse, key: str) -> ErasurePlan:
    """Everything `key` owns in ClickHouse: identifiers ever linked to it, keys merged into it, journeys."""
    ids = _owned(ch, "SELECT DISTINCT identifier FROM {db}.identity_links", [key])
    merged = _owned(ch, "SELECT DISTINCT stitched_key FROM {db}.identity_overrides", [key])
    keys = {key, *merged, *(self_key(i) for i in ids)}
    journeys = _owned(ch, "SELECT DISTINCT journey_id FROM {db}.journeys", keys)
    return ErasurePlan(key, tuple(sorted(ids)), tuple(sorted(keys)), tuple(sorted(journeys)))


def _send(settings: Settings, request: ForgetRequest) -> None:
    from kafka import KafkaProducer
    from kafka.errors import KafkaError

    try:
        producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all",
                                 **settings.kafka_client_options())  # fmt: skip
        try:
            producer.send(CLAIMS, encode_forget(request), partition=0).get(timeout=30)
        finally:
            producer.close()
    except KafkaError as exc:
        raise StackError(f"Kafka at {settings.kafka_bootstrap}: forget request not sent: {exc}") from exc


def _wait_acknowledged(ch: ClickHouse, request_id: str, timeout: float, sleep: Callable[[float], None]) -> int:
    """Wait for the arbiter's and every partition's acknowledgement; returns state entries erased."""
    deadline = time.monotonic() + timeout
    while True:
        rows = ch.query("SELECT stage, uniqExact(item), max(expected), sum(erased) FROM "
                        "(SELECT * FROM {db}.erasures FINAL WHERE request_id = %(r)s) GROUP BY stage",
                        {"r": request_id})  # fmt: skip
        by_stage = {str(stage): (int(items), int(expected), int(erased)) for stage, items, expected, erased in rows}
        if "identity" in by_stage:
            expected = by_stage["identity"][1]
            items, _, erased = by_stage.get("state", (0, 0, 0))
            if items >= expected:
                return erased
        if time.monotonic() > deadline:
            raise StackError(
                f"forget request {request_id} is queued on {CLAIMS} but no running worker acknowledged it within "
                f"{timeout:.0f} s (seen: {by_stage or 'nothing'}); nothing was deleted from ClickHouse. Start the "
                "workers and run the same command again: it is idempotent."
            )
        sleep(0.5)


def _wait_mutations(
    ch: ClickHouse, names: Sequence[str], cluster: str | None, timeout: float, sleep: Callable[[float], None]
) -> None:
    """Wait until no mutation of tables `names` (as named on the servers) is pending, on every replica."""
    if not names:
        return
    source = "system.mutations" if cluster is None else f"clusterAllReplicas('{cluster}', system.mutations)"
    deadline = time.monotonic() + timeout
    while True:
        pending = ch.query(f"SELECT table, count() FROM {source} WHERE database = %(db)s "  # noqa: S608
                           "AND table IN %(t)s AND is_done = 0 GROUP BY table",
                           {"db": ch.database, "t": tuple(names)})  # fmt: skip
        if not pending:
            return
        if time.monotonic() > deadline:
            raise StackError(f"ClickHouse mutations still running after {timeout:.0f} s: {dict(pending)}")
        sleep(0.2)


def _store_subjects(
    ch: ClickHouse,
    rows: Sequence[tuple[str, str, str]],
    cluster: str | None,
    timeout: float,
    sleep: Callable[[float], None],
) -> None:
    """Insert the request's subjects (data, not query text); on a cluster, wait until every server holds them.

    Each replica evaluates a mutation's subqueries itself when it rewrites its parts, against its own copy of
    `erasure_subjects` (replicated to every server, sinks/cluster.py): a copy still missing rows would delete
    less on that replica.
    """
    ch.insert(SUBJECTS_TABLE, ("request_id", "kind", "value"), rows)
    if cluster is None or not rows:
        return
    # system.one: readable without a grant where system.* needs one (deploy/k8s/clickhouse/access.sql).
    servers = int(ch.query(f"SELECT count() FROM clusterAllReplicas('{cluster}', system.one)")[0][0])  # noqa: S608
    deadline = time.monotonic() + timeout
    while True:
        # Each replica holds the request's rows at most once: all of them everywhere is servers x rows.
        held = ch.query(f"SELECT count() FROM clusterAllReplicas('{cluster}', {{db}}.{SUBJECTS_TABLE}) "  # noqa: S608
                        "WHERE request_id = %(r)s", {"r": rows[0][0]})  # fmt: skip
        if int(held[0][0]) >= servers * len(rows):
            return
        if time.monotonic() > deadline:
            raise StackError(f"{SUBJECTS_TABLE} not on every replica of cluster {cluster} after {timeout:.0f} s")
        sleep(0.2)


def _drop_subjects(
    ch: ClickHouse, request_id: str, cluster: str | None, timeout: float, sleep: Callable[[float], None]
) -> None:
    """Delete the request's subjects, and those an interrupted run left a day ago, by a mutation naming neither."""
    condition = f"request_id = '{request_id}' OR added_at < toDateTime({int(time.time()) - _STALE_SECONDS})"
    if not int(ch.query(f"SELECT count() FROM {{db}}.{SUBJECTS_TABLE} WHERE {condition}")[0][0]):  # noqa: S608
        return
    # One replicated table on a cluster (not sharded): a plain mutation reaches every replica.
    ch.execute(delete_statement(ch.database, SUBJECTS_TABLE, condition, None))
    _wait_mutations(ch, [SUBJECTS_TABLE], cluster, timeout, sleep)


def _mutation_settings(ch: ClickHouse) -> dict[str, int]:
    known = ch.query("SELECT name FROM system.settings WHERE name IN %(n)s", {"n": tuple(_MUTATION_SETTINGS)})
    return {str(name): _MUTATION_SETTINGS[str(name)] for (name,) in known}


def _erase(
    ch: ClickHouse, p: ErasurePlan, request_id: str, cluster: str | None, timeout: float,
    sleep: Callable[[float], None],
) -> dict[str, int]:  # fmt: skip
    """Delete what `p` names from every table; returns the rows each table held before."""
    work = deletions(p, request_id, ch.database)
    running = False  # mutations issued and not known done: they still read the subjects
    try:
        _store_subjects(ch, subject_rows(p, request_id), cluster, timeout, sleep)
        before = {table: _count(ch, table, condition) for table, condition in work}
        touched = [t for t, n in before.items() if n]
        settings = _mutation_settings(ch)
        running = bool(touched)
        for table, condition in work:
            if before[table]:
                ch.execute(delete_statement(ch.database, table, condition, cluster), settings=settings)
        _wait_mutations(ch, touched if cluster is None else [f"{t}_local" for t in touched], cluster, timeout, sleep)
        running = False
        left = {t: n for t, c in work if (n := _count(ch, t, c))}
        if left:
            raise StackError(f"forget request {request_id}: rows still present after the delete: {left}")
        return before
    except StackError as exc:
        if running:
            raise StackError(f"{exc}; the request's rows stay in {ch.database}.{SUBJECTS_TABLE} while its "
                             "mutations need them (a later run removes them): run the command again"
                             ) from exc  # fmt: skip
        raise
    finally:
        if not running:
            _drop_subjects(ch, request_id, cluster, timeout, sleep)


def forget(
    settings: Settings,
    customer: str | None = None,
    *,
    identifier: str | None = None,
    timeout: float = 120.0,
    sleep: Callable[[float], None] = time.sleep,
    clickhouse: ClickHouse | None = None,
) -> ForgetReport:
    """Erase a customer everywhere; raises StackError (nothing deleted) when no worker acknowledges in time.

    `clickhouse`: the administrator's connection to use (default: one to `CXJ_CLICKHOUSE_ADMIN_URL`, closed
    at the end). No statement it sends carries a customer key or identifier in its text: lookups send them
    as an external table, deletions read them from `erasure_subjects`.
    """
    started = time.monotonic()
    ch = clickhouse or ClickHouse(settings.clickhouse_admin, connect_database="default")
    try:
        key = resolve(ch, settings, customer, identifier)
        request = ForgetRequest(uuid.uuid4().hex, key, int(time.time() * 1000))
        _send(settings, request)
        state_entries = _wait_acknowledged(ch, request.request_id, timeout, sleep)
        # After the acknowledgements: every link and row the workers held for the key is stored by now.
        p = plan(ch, key)
        before = _erase(ch, p, request.request_id, settings.clickhouse_cluster, timeout, sleep)
        ch.execute(f"INSERT INTO {ch.database}.erasures (request_id, stage, item, partition, expected, erased, "
                   "done_at) VALUES", [(request.request_id, "clickhouse", 0, -1, len(before), sum(before.values()),
                                        int(time.time()))])  # fmt: skip
        return ForgetReport(request.request_id, p.key, len(p.identifiers), len(p.keys), before, state_entries,
                            time.monotonic() - started)  # fmt: skip
    finally:
        if clickhouse is None:
            ch.close()


def _count(ch: ClickHouse, table: str, condition: str) -> int:
    return int(ch.query(f"SELECT count() FROM {{db}}.{table} WHERE {condition}")[0][0])  # noqa: S608
