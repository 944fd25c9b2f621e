"""Reference model of the changelog encoding (the Python codec the native core replaced: core/src/codec.rs)."""

from __future__ import annotations

from array import array
from typing import Any, Final, NamedTuple

import msgpack

from streams.domain.journeys import JOURNEY_TYPES
from tests.reference.customer import Contact, CustomerState, Experience, Watch
from tests.reference.journeys import Journey

__all__ = ["Forward", "decode_entry", "decode_state", "encode_forward", "encode_state"]

_STATE: Final = 1
_FORWARD: Final = 0
_STATUS: Final = ("", "open", "completed", "abandoned")
_JTYPE: Final = {t: i for i, t in enumerate(JOURNEY_TYPES)}


class Forward(NamedTuple):
    """This key was merged into `target`; messages still routed here are passed on."""

    target: str
    created_ms: int


def _hashes(events: set[int]) -> bytes:
    return array("Q", sorted(events)).tobytes()


def encode_state(s: CustomerState) -> bytes:
    exps: list[Any] = []
    for k, e in s.exps.items():
        exps += (k, e.first_neg, e.first_pos, e.mask, e.last)
    journeys = [
        (
            j.jid,
            _JTYPE[j.jtype],
            j.started,
            j.last,
            j.terminal,
            j.channels,
            j.dissatisfying,
            _STATUS.index(j.emitted),
            _hashes(j.events),
        )
        for j in s.journeys.values()
    ]
    contacts = [
        (c.anchor, c.at, c.ref, c.experience_key, c.event_id, c.channel, c.journey_id, c.flagged) for c in s.contacts
    ]
    orders = [x for order_id, (t, amount) in s.orders.items() for x in (order_id, t, amount)]
    doc = (
        _STATE,
        s.key,
        s.version,
        s.latest,
        s.horizon,
        exps,
        journeys,
        orders,
        contacts,
        s.alerted,
        s.aliases,
        s.held,
        s.held_at,
    )
    if s.watches:  # absent when none, as in states written before them
        doc = (*doc, [x for w in s.watches for x in (w.alert_id, w.at, w.reported, w.reported_at)])
    return msgpack.packb(doc, use_bin_type=True)  # type: ignore[no-any-return]


def encode_forward(target: str, created_ms: int) -> bytes:
    return msgpack.packb((_FORWARD, target, created_ms), use_bin_type=True)  # type: ignore[no-any-return]


def _state(doc: list[Any]) -> CustomerState:
    _, key, version, latest, horizon, exps, journeys, orders, contacts, alerted, aliases = doc[:11]
    state = CustomerState(key, version, latest, horizon)
    for i in range(0, len(exps), 5):
        state.exps[exps[i]] = Experience(exps[i + 1], exps[i + 2], exps[i + 3], exps[i + 4])
    for jid, jt, started, last, terminal, channels, dissat, emitted, events in journeys:
        state.journeys[jid] = Journey(
            jid,
            JOURNEY_TYPES[jt],
            started,
            last,
            terminal,
            channels,
            dissat,
            set(array("Q", events)),
            _STATUS[emitted],
        )
    for i in range(0, len(orders), 3):
        state.orders[orders[i]] = (orders[i + 1], orders[i + 2])
    state.contacts = [Contact(*c) for c in contacts]
    state.alerted = list(alerted)
    state.aliases = list(aliases)
    if len(doc) > 11:  # states written before held alerts have neither field
        state.held, state.held_at = list(doc[11]), doc[12]
    if len(doc) > 13:
        w = doc[13]
        state.watches = [Watch(w[i], w[i + 1], w[i + 2], w[i + 3]) for i in range(0, len(w), 4)]
    return state


def decode_entry(data: bytes) -> CustomerState | Forward:
    doc = msgpack.unpackb(data, raw=False, use_list=True)
    if doc[0] == _FORWARD:
        return Forward(doc[1], doc[2])
    return _state(doc)


def decode_state(data: bytes) -> CustomerState:
    entry = decode_entry(data)
    if isinstance(entry, Forward):
        raise ValueError("entry is a forward, not a state")
    return entry
