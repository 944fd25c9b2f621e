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
4. It checks that nothing about the keys is left, and records the request in `cx.erasures` — with counts,
   never the keys.

A customer who comes back after this is a new customer. What stays, by design: `signals_hourly`
(distinct-count states of hashed keys, anonymous aggregates) and the Kafka input, DLQ and alert topics until
their retention passes (7 and 30 days); see the README.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Final

import orjson

from cxj.errors import ConfigError, StackError
from cxj.settings import Settings
from schemas.records import ForgetRequest
from sinks.clickhouse import ClickHouse
from streams.codec import encode_forget
from streams.identity import ANON_PREFIX, is_anonymous, self_key
from streams.ingest import IDENTIFIER_TYPES
from streams.pii import hash_pii, normalize_email, normalize_phone
from streams.topics import CLAIMS

__all__ = ["ErasurePlan", "ForgetReport", "delete_statement", "deletions", "forget", "identifier_of", "plan", "resolve"]

_HASHED: Final = re.compile(r"^[0-9a-f]{64}$")
_KINDS: Final = frozenset(IDENTIFIER_TYPES.values())
# Identifier types whose value is stored as given (phone and e-mail only ever as keyed hashes).
_RAW_KINDS: Final = frozenset({"anon", "device", "wechat"})


@dataclass(frozen=True)
class ErasurePlan:
    """What one request erases, read from ClickHouse before anything is touched."""

    key: str
    identifiers: tuple[str, ...]
    keys: tuple[str, ...]
    journey_ids: tuple[str, ...]

    @property
    def needles(self) -> tuple[str, ...]:
        """JSON string literals that mark a dead letter as this customer's (ids kept as given)."""
        values = [] if is_anonymous(self.key) else [self.key]
        values += [i.split(":", 1)[1] for i in self.identifiers if i.split(":", 1)[0] in _RAW_KINDS]
        return tuple(sorted({orjson.dumps(v).decode() for v in values if v}))


@dataclass
class ForgetReport:
    request_id: str
    key: str
    identifiers: int
    keys: int
    rows: dict[str, int] = field(default_factory=dict)
    state_entries: int = 0
    seconds: float = 0.0


def identifier_of(text: str, settings: Settings) -> str:
    """`phone:<raw>` / `email:<raw>` → the identifier ingest stores (a keyed hash); other `kind:value` as is."""
    text = _printable(text, "identifier")
    kind, sep, value = text.partition(":")
    value = value.strip()
    if not sep or kind not in _KINDS or not value:
        raise ConfigError(f"identifier must be kind:value with kind one of {', '.join(sorted(_KINDS))}")
    if kind in ("phone", "email") and not _HASHED.match(value):
        try:
            normal = normalize_phone(value, settings.default_region) if kind == "phone" else normalize_email(value)
        except ValueError as exc:
            raise ConfigError(f"{kind}: {exc}") from None
        value = hash_pii(settings.require_pii_secret(), kind, normal)
    return f"{kind}:{value}"


def _printable(text: str, what: str) -> str:
    text = text.strip()
    if not text or len(text) > 512 or any(ord(c) < 32 for c in text):
        raise ConfigError(f"{what} must be 1-512 printable characters")
    return text


def resolve(ch: ClickHouse, settings: Settings, customer: str | None, identifier: str | None) -> str:
    """The key to forget: a customer key as stored (customer_id or `~kind:value`), or the key an identifier
    (or an anonymous key merged since) resolves to."""
    if (customer is None) == (identifier is None):
        raise ConfigError("give exactly one of: a customer key, or --identifier kind:value")
    if customer is not None:
        key = _printable(customer, "customer key")
        if not is_anonymous(key):
            return key
        identifier = key[len(ANON_PREFIX) :]
    else:
        assert identifier is not None
        identifier = identifier_of(identifier, settings)
    linked = ch.query("SELECT customer_key FROM {db}.identity_links FINAL WHERE identifier = %(i)s",
                      {"i": identifier})  # fmt: skip
    return str(linked[0][0]) if linked else self_key(identifier)


def plan(ch: ClickHouse, key: str) -> ErasurePlan:
    """Everything `key` owns in ClickHouse: identifiers ever linked to it, keys merged into it, journeys."""
    ids = {str(r[0]) for r in ch.query("SELECT DISTINCT identifier FROM {db}.identity_links "
                                       "WHERE customer_key = %(k)s", {"k": key})}  # fmt: skip
    merged = {str(r[0]) for r in ch.query("SELECT DISTINCT stitched_key FROM {db}.identity_overrides "
                                          "WHERE customer_key = %(k)s", {"k": key})}  # fmt: skip
    keys = {key, *merged, *(self_key(i) for i in ids)}
    journeys = ch.query("SELECT DISTINCT journey_id FROM {db}.journeys WHERE customer_key IN %(keys)s",
                        {"keys": tuple(sorted(keys))})  # fmt: skip
    return ErasurePlan(key, tuple(sorted(ids)), tuple(sorted(keys)), tuple(sorted(str(r[0]) for r in journeys)))


def deletions(p: ErasurePlan) -> list[tuple[str, str, dict[str, object]]]:
    """(table, WHERE condition, parameters) for every table that can hold the customer."""
    keys: dict[str, object] = {"keys": p.keys}
    ids: dict[str, object] = {"keys": p.keys, "ids": p.identifiers or ("",)}
    out: list[tuple[str, str, dict[str, object]]] = [
        (table, "customer_key IN %(keys)s", keys)
        for table in ("touchpoints", "experience_signals", "customer_experience", "churn_alerts", "journeys",
                      "risk_daily")
    ]  # fmt: skip
    out += [
        ("journey_funnel", "journey_id IN %(jids)s", {"jids": p.journey_ids or ("",)}),
        ("identity_links", "identifier IN %(ids)s OR customer_key IN %(keys)s OR previous_key IN %(keys)s", ids),
        ("identity_overrides", "stitched_key IN %(keys)s OR customer_key IN %(keys)s", keys),
        ("identity_conflicts", "identifier IN %(ids)s OR existing_key IN %(keys)s OR claimed_key IN %(keys)s", ids),
    ]
    if p.needles:
        needles = {f"n{i}": n for i, n in enumerate(p.needles)}
        condition = " OR ".join(f"position(raw, %({name})s) > 0" for name in needles)
        out.append(("dead_letters", condition, needles))
    return out


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


def delete_statement(database: str, table: str, condition: str, cluster: str | None) -> str:
    """The mutation for one table; on a cluster, for its `_local` shards on every node."""
    if cluster is None:
        return f"ALTER TABLE {database}.{table} DELETE WHERE {condition}"
    return f"ALTER TABLE {database}.{table}_local ON CLUSTER '{cluster}' DELETE WHERE {condition}"


def _wait_mutations(
    ch: ClickHouse, tables: Sequence[str], cluster: str | None, timeout: float, sleep: Callable[[float], None]
) -> None:
    if not tables:
        return
    source = "system.mutations" if cluster is None else f"clusterAllReplicas('{cluster}', system.mutations)"
    names = tuple(tables) if cluster is None else tuple(f"{t}_local" for t in tables)
    deadline = time.monotonic() + timeout
    while True:
        pending = ch.query(f"SELECT table, count() FROM {source} WHERE database = %(db)s "  # noqa: S608
                           "AND table IN %(t)s AND is_done = 0 GROUP BY table",
                           {"db": ch.database, "t": names})  # fmt: skip
        if not pending:
            return
        if time.monotonic() > deadline:
            raise StackError(f"ClickHouse mutations still running after {timeout:.0f} s: {dict(pending)}")
        sleep(0.2)


def forget(
    settings: Settings,
    customer: str | None = None,
    *,
    identifier: str | None = None,
    timeout: float = 120.0,
    sleep: Callable[[float], None] = time.sleep,
) -> ForgetReport:
    """Erase a customer everywhere; raises StackError (nothing deleted) when no worker acknowledges in time."""
    started = time.monotonic()
    ch = ClickHouse(settings.clickhouse_admin, connect_database="default")
    try:
        key = resolve(ch, settings, customer, identifier)
        request = ForgetRequest(uuid.uuid4().hex, key, int(time.time() * 1000))
        _send(settings, request)
        state_entries = _wait_acknowledged(ch, request.request_id, timeout, sleep)
        # After the acknowledgements: every link and row the workers held for the key is stored by now.
        p = plan(ch, key)
        work = deletions(p)
        before = {table: _count(ch, table, condition, params) for table, condition, params in work}
        cluster = settings.clickhouse_cluster
        for table, condition, params in work:
            if before[table]:
                ch.execute(delete_statement(ch.database, table, condition, cluster), params)
        _wait_mutations(ch, [t for t, n in before.items() if n], cluster, timeout, sleep)
        left = {t: n for t, c, params in work if (n := _count(ch, t, c, params))}
        if left:
            raise StackError(f"forget request {request.request_id}: rows still present after the delete: {left}")
        erased = sum(before.values())
        ch.execute(f"INSERT INTO {ch.database}.erasures (request_id, stage, item, partition, expected, erased, "
                   "done_at) VALUES", [(request.request_id, "clickhouse", 0, -1, len(work), erased,
                                        int(time.time()))])  # fmt: skip
        return ForgetReport(request.request_id, p.key, len(p.identifiers), len(p.keys), before, state_entries,
                            time.monotonic() - started)  # fmt: skip
    finally:
        ch.close()


def _count(ch: ClickHouse, table: str, condition: str, params: dict[str, object]) -> int:
    return int(ch.query(f"SELECT count() FROM {{db}}.{table} WHERE {condition}", params)[0][0])  # noqa: S608
