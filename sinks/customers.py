"""One customer in ClickHouse: whom an id names (identity links, merges) and their profile.

`cxj serve`'s `GET /v1/customers/{id}`, `cxj customer` and `cxj forget` resolve an id the same way: a customer
key as stored, an anonymous key (`~kind:value`), or an identifier (`phone:+86 138 0013 8000`, `email:…`,
`anon:…`, `device:…`, `wechat:…`; phones and e-mails hashed with the PII secret, as ingest stores them).

No statement's text names the customer (ClickHouse 18.16 shows every user the text of logged and running
queries): keys and identifiers travel as an external table. Reads are by the `*_by_customer` tables
(migration 0008), whose primary key starts with the customer key, so a profile costs a few index ranges at
any number of customers.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final, NamedTuple

from schemas.api import ActionView, AlertView, ExperienceView, JourneyView, Profile, Risk, TouchpointView
from schemas.errors import ConfigError, SinkError
from schemas.settings import Settings
from sinks.clickhouse import ClickHouse
from streams.domain.identity import ANON_PREFIX, is_anonymous, self_key
from streams.domain.ingest import IDENTIFIER_TYPES
from streams.domain.pii import hash_pii, normalize_email, normalize_phone

__all__ = [
    "PROFILE",
    "QUERIES",
    "TOUCHPOINTS_SHOWN",
    "Resolved",
    "identifier_of",
    "linked_key",
    "printable",
    "profile",
    "resolve",
    "select_values",
]

KINDS: Final = frozenset(IDENTIFIER_TYPES.values())
TOUCHPOINTS_SHOWN: Final = 20
ALERTS_SHOWN: Final = 50
_HASHED: Final = re.compile(r"^[0-9a-f]{64}$")
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


def printable(text: str, what: str) -> str:
    """`text` stripped, when it is 1-512 characters without control characters (C0, DEL, C1); else a
    ConfigError."""
    text = text.strip()
    if not text or len(text) > 512 or any(ord(c) < 32 or 127 <= ord(c) <= 159 for c in text):
        raise ConfigError(f"{what} must be 1-512 printable characters")
    return text


def identifier_of(text: str, settings: Settings) -> str:
    """`phone:<raw>` / `email:<raw>` → the identifier ingest stores (a keyed hash); other `kind:value` as is."""
    text = printable(text, "identifier")
    kind, sep, value = text.partition(":")
    value = value.strip()
    if not sep or kind not in KINDS or not value:
        raise ConfigError(f"identifier must be kind:value with kind one of {', '.join(sorted(KINDS))}")
    if kind in ("phone", "email") and not _HASHED.match(value):
        try:
            normal = normalize_phone(value, settings.default_region) if kind == "phone" else normalize_email(value)
        except ValueError as exc:
            raise ConfigError(f"{kind}: {exc}") from None
        value = hash_pii(settings.require_pii_secret(), kind, normal)
    return f"{kind}:{value}"


def select_values(ch: ClickHouse, sql: str, values: Iterable[str], *, cluster: bool = False) -> list[tuple[Any, ...]]:
    """A SELECT over `_values` (one String column `value`), an external table: the values travel as data,
    never in the query text. `{in}` in the SQL is `IN`, or `GLOBAL IN` on a cluster (it ships the values to
    every shard; on one server it would also keep 18.16 from using the primary key: a scan of every row)."""
    table = {"name": "_values", "structure": [("value", "String")], "data": [{"value": v} for v in sorted(set(values))]}
    sql = sql.replace("{db}", ch.database).replace("{in}", "GLOBAL IN" if cluster else "IN")
    rows: list[tuple[Any, ...]] = ch.execute(sql, external_tables=[table])
    return rows


class State(NamedTuple):
    """The customer's row of `customer_experience`."""

    churn_risk: Risk
    dissatisfied_90d: int
    satisfied_90d: int
    experience_score: float
    lifetime_value: float
    last_event_at: datetime


@dataclass(frozen=True)
class Resolved:
    """Whom an id names: the customer's current key, every stitched key that is that customer, its state."""

    key: str
    keys: tuple[str, ...]
    state: State | None = None


def linked_key(ch: ClickHouse, identifier: str, *, cluster: bool) -> str:
    """The key `identifier` is linked to (`identity_links`), else the anonymous key it makes itself."""
    sql = "SELECT customer_key FROM {db}.identity_links FINAL WHERE identifier {in} (SELECT value FROM _values)"
    rows = select_values(ch, sql, [identifier], cluster=cluster)
    return str(rows[0][0]) if rows else self_key(identifier)


_IN_VALUES: Final = "{in} (SELECT value FROM _values)"
_NO_STATE: Final = "'', 0, 0, 0.0, 0.0, toDateTime(0)"
# One round trip for the usual case: where the key moved (its latest override, or its own state row), which
# keys merged into it (their latest override points at it), and its state; a moved key is asked again under
# its customer. Each part reads by a primary key (overrides by stitched_key, state by customer_key) but the
# candidates of "merged into it", a scan of the small overrides table's customer_key column.
_WHO: Final = (
    f"SELECT 'moved', argMax(customer_key, version), {_NO_STATE} FROM {{db}}.identity_overrides"
    f" WHERE stitched_key {_IN_VALUES}"
    f" UNION ALL SELECT 'merged', stitched_key, {_NO_STATE} FROM (SELECT stitched_key,"
    " argMax(customer_key, version) AS resolved FROM {db}.identity_overrides WHERE stitched_key {in}"
    f" (SELECT stitched_key FROM {{db}}.identity_overrides WHERE customer_key {_IN_VALUES})"
    f" GROUP BY stitched_key) WHERE resolved {_IN_VALUES}"
    " UNION ALL SELECT 'state', merged_into, toString(churn_risk), dissatisfied_90d, satisfied_90d,"
    " toFloat64(experience_score), lifetime_value, last_event_at FROM {db}.customer_experience FINAL"
    f" WHERE customer_key {_IN_VALUES}"
)


def _on_cluster(settings: Settings) -> bool:
    return settings.clickhouse_cluster is not None


def resolve_key(ch: ClickHouse, settings: Settings, text: str) -> str | None:
    """The stored key `text` names, before merges: as given, or what its identifier is linked to; None for an
    anonymous key or identifier no touchpoint could have made (`~x`, `phone:not a number`): it names nobody.
    A ConfigError for text that is no id at all (empty, over 512 characters, control characters)."""
    text = printable(text, "customer id")
    settings.require_pii_secret()  # so that a ConfigError below is about the id, not the configuration
    kind, sep, _ = text.partition(":")
    if not is_anonymous(text) and not (sep and kind in KINDS):
        return text
    try:
        identifier = identifier_of(text[len(ANON_PREFIX) :] if is_anonymous(text) else text, settings)
    except ConfigError:
        return None
    return linked_key(ch, identifier, cluster=_on_cluster(settings))


def resolve(ch: ClickHouse, settings: Settings, text: str) -> Resolved | None:
    """The customer `text` names, following merges: a merged-away key answers with the customer it merged
    into (`identity_overrides`, or the key's own state row, `merged_into`), whose keys include it; None when
    the text names nobody."""
    key = resolve_key(ch, settings, text)
    if key is None:
        return None
    for _ in range(8):  # merges point at the customer directly; a chain is followed a few hops at most
        rows = select_values(ch, _WHO, [key], cluster=_on_cluster(settings))
        moved = [r[1] for r in rows if r[0] in ("moved", "state") and r[1] and r[1] != key]
        if moved:
            key = str(moved[0])
            continue
        state = next((State(*r[2:]) for r in rows if r[0] == "state"), None)
        merged = {str(r[1]) for r in rows if r[0] == "merged"}
        return Resolved(key, tuple(sorted({key, *merged})), state)
    raise SinkError(f"identity overrides form a cycle through {len(text)}-character id")  # never written so


_IN_KEYS: Final = f"customer_key {_IN_VALUES}"
# What a profile reads of the customer's keys (`_values`), each a few ranges of a `*_by_customer` table.
# `PROFILE` asks all four in one round trip, each as an array of tuples (at 1,000,000 customers and four
# clients on 2 cores, p99 149 -> 98 ms; ClickHouse's CPU per profile stays about 23 ms).
_PARTS: Final = {  # name: (columns, the rest of the query)
    "touchpoints": (
        ("event_id", "occurred_at", "channel", "event_type", "source", "signals", "journey_id"),
        f"FROM {{db}}.touchpoints_by_customer FINAL WHERE {_IN_KEYS} "
        f"ORDER BY occurred_at DESC, event_id DESC LIMIT {TOUCHPOINTS_SHOWN}",
    ),
    "signals": (
        ("experience_key", "signal", "occurred_at", "polarity", "dimension", "channel"),
        f"FROM {{db}}.signals_by_customer FINAL WHERE {_IN_KEYS}",
    ),
    "journeys": (
        ("journey_id", "toString(journey_type) AS type", "toString(status) AS state", "started_at", "last_event_at",
         "touchpoints", "channels", "dissatisfying"),
        f"FROM {{db}}.journeys_by_customer FINAL WHERE {_IN_KEYS} AND merged_into = '' AND status = 'open' "
        "ORDER BY last_event_at DESC",
    ),
    "alerts": (
        ("alert_id", "toString(level) AS risk", "dissatisfied_90d", "experience_keys", "signals", "dimensions",
         "triggered_at", "actions", "action_texts"),
        f"FROM {{db}}.alerts_by_customer FINAL WHERE {_IN_KEYS} ORDER BY triggered_at DESC, alert_id "
        f"LIMIT {ALERTS_SHOWN}",
    ),
}  # fmt: skip
QUERIES: Final = {name: f"SELECT {', '.join(columns)} {rest}" for name, (columns, rest) in _PARTS.items()}
PROFILE: Final = "SELECT " + ", ".join(
    f"(SELECT groupArray(tuple({', '.join(c.rsplit(' AS ', 1)[-1] for c in columns)})) FROM ({QUERIES[name]}))"
    for name, (columns, _) in _PARTS.items()
)


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def profile(ch: ClickHouse, settings: Settings, text: str) -> Profile | None:
    """The profile of the customer `text` names, or None when ClickHouse knows nothing of them."""
    who = resolve(ch, settings, text)
    if who is None:
        return None
    [(touchpoints, signals, journeys, alerts)] = select_values(ch, PROFILE, who.keys, cluster=_on_cluster(settings))
    if who.state is None and not touchpoints:
        return None
    state = who.state or State("none", 0, 0, 0.0, 0.0, _EPOCH)
    last_event = _utc(state.last_event_at) if _utc(state.last_event_at) > _EPOCH else None
    # groupArray keeps no order a query can rely on: each list is ordered here, as its query orders it.
    touchpoints = sorted(touchpoints, key=lambda t: (t[1], t[0]), reverse=True)
    journeys = sorted(journeys, key=lambda j: j[4], reverse=True)
    alerts = sorted(sorted(alerts, key=lambda a: a[0]), key=lambda a: a[6], reverse=True)  # newest, then by id
    return Profile(
        customer_key=who.key,
        keys=list(who.keys),
        churn_risk=state.churn_risk,
        dissatisfied_90d=int(state.dissatisfied_90d),
        satisfied_90d=int(state.satisfied_90d),
        experience_score=round(float(state.experience_score), 2),
        lifetime_value=round(float(state.lifetime_value), 2),
        last_event_at=last_event,
        experiences=experiences(signals, last_event, settings.window_days),
        open_journeys=[
            JourneyView(
                journey_id=j[0],
                journey_type=j[1],
                status=j[2],
                started_at=_utc(j[3]),
                last_event_at=_utc(j[4]),
                touchpoints=j[5],
                channels=list(j[6]),
                dissatisfying=bool(j[7]),
            )
            for j in journeys
        ],
        touchpoints=[
            TouchpointView(
                event_id=t[0],
                occurred_at=_utc(t[1]),
                channel=t[2],
                event_type=t[3],
                source=t[4],
                signals=list(t[5]),
                journey_id=t[6],
            )
            for t in touchpoints
        ],
        alerts=[
            AlertView(
                alert_id=a[0],
                level=a[1],
                dissatisfied_90d=a[2],
                experience_keys=list(a[3]),
                signals=list(a[4]),
                dimensions=list(a[5]),
                triggered_at=_utc(a[6]),
                actions=[ActionView(action=i, text=t) for i, t in zip(a[7], a[8], strict=False)],
            )
            for a in alerts
        ],
    )


def experiences(
    signals: Iterable[tuple[str, str, datetime, int, str, str]], last_event: datetime | None, window_days: int
) -> list[ExperienceView]:
    """The experiences that count in the window (Contract 2), newest first (pure).

    An experience is dissatisfying when its first negative signal lies in (t - window, t], t the customer's
    latest event; satisfying when it has no negative signal and its first positive one lies there.
    """
    by_key: dict[str, list[tuple[str, datetime, int, str, str]]] = {}
    for key, signal, at, polarity, dimension, channel in signals:
        by_key.setdefault(key, []).append((signal, _utc(at), polarity, dimension, channel))
    if last_event is None:
        return []
    start = last_event - timedelta(days=window_days)
    out = []
    for key, rows in by_key.items():
        negative = [r[1] for r in rows if r[2] < 0]
        first = min(negative) if negative else min(r[1] for r in rows if r[2] > 0)
        if not start < first <= last_event:
            continue
        kept = [r for r in rows if (r[2] < 0) == bool(negative)]
        out.append(
            ExperienceView(
                experience_key=key,
                occurred_at=first,
                polarity="dissatisfying" if negative else "satisfying",
                signals=sorted({r[0] for r in kept}),
                dimensions=sorted({r[3] for r in kept if r[3]}),
                channels=sorted({r[4] for r in rows if r[4]}),
            )
        )
    out.sort(key=lambda e: (e.occurred_at, e.experience_key), reverse=True)
    return out
