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

from schemas.api import AlertView, ExperienceView, JourneyView, Profile, Risk, TouchpointView
from schemas.errors import ConfigError, SinkError
from schemas.settings import Settings
from sinks.clickhouse import ClickHouse
from streams.domain.identity import ANON_PREFIX, is_anonymous, self_key
from streams.domain.ingest import IDENTIFIER_TYPES
from streams.domain.pii import hash_pii, normalize_email, normalize_phone

__all__ = [
    "QUERIES",
    "TOUCHPOINTS_SHOWN",
    "Resolved",
    "identifier_of",
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


def select_values(ch: ClickHouse, sql: str, values: Iterable[str]) -> list[tuple[Any, ...]]:
    """A SELECT over `_values` (one String column `value`), an external table: the values travel as data,
    never in the query text. GLOBAL in the SQL ships them to every shard."""
    table = {"name": "_values", "structure": [("value", "String")], "data": [{"value": v} for v in sorted(set(values))]}
    rows: list[tuple[Any, ...]] = ch.execute(sql.replace("{db}", ch.database), external_tables=[table])
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


def _linked(ch: ClickHouse, identifier: str) -> str:
    rows = select_values(ch, "SELECT customer_key FROM {db}.identity_links FINAL "
                             "WHERE identifier GLOBAL IN (SELECT value FROM _values)", [identifier])  # fmt: skip
    return str(rows[0][0]) if rows else self_key(identifier)


_OVERRIDES: Final = (
    "(SELECT stitched_key, argMax(customer_key, version) AS resolved FROM {db}.identity_overrides "
    "GROUP BY stitched_key)"
)
_IN_VALUES: Final = "GLOBAL IN (SELECT value FROM _values)"
# One round trip for the usual case: where the key moved (an override, or its own state row), who merged into
# it, and its state; a moved key is looked up again under its customer.
_WHO: Final = (
    f"SELECT 'moved', resolved, '', 0, 0, 0.0, 0.0, toDateTime(0) FROM {_OVERRIDES} WHERE stitched_key {_IN_VALUES}"
    f" UNION ALL SELECT 'merged', stitched_key, '', 0, 0, 0.0, 0.0, toDateTime(0) FROM {_OVERRIDES}"
    f" WHERE resolved {_IN_VALUES}"
    " UNION ALL SELECT 'state', merged_into, toString(churn_risk), dissatisfied_90d, satisfied_90d,"
    " toFloat64(experience_score), lifetime_value, last_event_at FROM {db}.customer_experience FINAL"
    f" WHERE customer_key {_IN_VALUES}"
)


def resolve_key(ch: ClickHouse, settings: Settings, text: str) -> str:
    """The stored key `text` names, before merges: as given, or what its identifier is linked to."""
    text = printable(text, "customer id")
    if is_anonymous(text):
        return _linked(ch, identifier_of(text[len(ANON_PREFIX) :], settings))
    kind, sep, _ = text.partition(":")
    if sep and kind in KINDS:
        return _linked(ch, identifier_of(text, settings))
    return text


def resolve(ch: ClickHouse, settings: Settings, text: str) -> Resolved:
    """The customer `text` names, following merges: a merged-away key answers with the customer it merged
    into (`identity_overrides`, or the key's own state row, `merged_into`), whose keys include it."""
    key = resolve_key(ch, settings, text)
    for _ in range(8):  # merges point at the customer directly; a chain is followed a few hops at most
        rows = select_values(ch, _WHO, [key])
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
QUERIES: Final = {
    "touchpoints": "SELECT event_id, occurred_at, channel, event_type, source, signals, journey_id "
    f"FROM {{db}}.touchpoints_by_customer FINAL WHERE {_IN_KEYS} "
    f"ORDER BY occurred_at DESC, event_id DESC LIMIT {TOUCHPOINTS_SHOWN}",
    "signals": "SELECT experience_key, signal, occurred_at, polarity, dimension, channel "
    f"FROM {{db}}.signals_by_customer FINAL WHERE {_IN_KEYS}",
    "journeys": "SELECT journey_id, toString(journey_type), toString(status), started_at, last_event_at, "
    f"touchpoints, channels, dissatisfying FROM {{db}}.journeys_by_customer FINAL WHERE {_IN_KEYS} "
    "AND merged_into = '' AND status = 'open' ORDER BY last_event_at DESC",
    "alerts": "SELECT alert_id, toString(level), dissatisfied_90d, experience_keys, signals, dimensions, "
    f"triggered_at FROM {{db}}.churn_alerts FINAL WHERE {_IN_KEYS} ORDER BY triggered_at DESC, alert_id "
    f"LIMIT {ALERTS_SHOWN}",
}


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def profile(ch: ClickHouse, settings: Settings, text: str) -> Profile | None:
    """The profile of the customer `text` names, or None when ClickHouse knows nothing of them."""
    who = resolve(ch, settings, text)
    touchpoints = select_values(ch, QUERIES["touchpoints"], who.keys)
    if who.state is None and not touchpoints:
        return None
    state = who.state or State("none", 0, 0, 0.0, 0.0, _EPOCH)
    last_event = _utc(state.last_event_at) if _utc(state.last_event_at) > _EPOCH else None
    signals = select_values(ch, QUERIES["signals"], who.keys)
    journeys = select_values(ch, QUERIES["journeys"], who.keys)
    alerts = select_values(ch, QUERIES["alerts"], who.keys)
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
