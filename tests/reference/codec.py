"""Reference model of the changelog encoding (the Python codec the native core replaced: core/src/codec.rs)."""

from __future__ import annotations

from array import array
from typing import Any, Final, NamedTuple

import msgpack

from streams.domain.journeys import JOURNEY_TYPES
from tests.reference.customer import Contact, CustomerState, Experience, Watch
from tests.reference.journeys import Journey

__all__ = ["Forward", "decode_entry", "decode_state", "encode_forward", "encode_state", "encode_state_absolute"]

_FORWARD: Final = 0
_STATE_ABSOLUTE: Final = 1  # times as they are (states written before relative times)
_STATE: Final = 2  # every time but `latest` as `latest - t`, None for 0
_STATUS: Final = ("", "open", "completed", "abandoned")
_JTYPE: Final = {t: i for i, t in enumerate(JOURNEY_TYPES)}


class Forward(NamedTuple):
    """This key was merged into `target`; messages still routed here are passed on."""

    target: str
    created_ms: int


def _hashes(events: set[int]) -> bytes:
    return array("Q", sorted(events)).tobytes()


def encode_state(s: CustomerState) -> bytes:
    """A state as the changelog holds it: every time but `latest` relative to it (None for 0)."""
    return _encode(s, relative=True)


def encode_state_absolute(s: CustomerState) -> bytes:
    """A state as the first changelogs held it (tag 1, times as they are): what a worker must still read."""
    return _encode(s, relative=False)


def _encode(s: CustomerState, *, relative: bool) -> bytes:
    latest = s.latest

    def t(at: int) -> int | None:
        if not relative:
            return at
        return None if at == 0 else latest - at

    exps: list[Any] = []
    for k, e in s.exps.items():
        exps += (k, t(e.first_neg), t(e.first_pos), e.mask, t(e.last))
    journeys = [
        (
            j.jid,
            _JTYPE[j.jtype],
            t(j.started),
            t(j.last),
            t(j.terminal),
            j.channels,
            j.dissatisfying,
            _STATUS.index(j.emitted),
            _hashes(j.events),
        )
        for j in s.journeys.values()
    ]
    contacts = [
        (c.anchor, t(c.at), c.ref, c.experience_key, c.event_id, c.channel, c.journey_id, c.flagged) for c in s.contacts
    ]
    orders = [x for order_id, (at, amount) in s.orders.items() for x in (order_id, t(at), amount)]
    doc = (
        _STATE if relative else _STATE_ABSOLUTE,
        s.key,
        t(s.version),
        latest,
        t(s.horizon),
        exps,
        journeys,
        orders,
        contacts,
        [t(a) for a in s.alerted],
        s.aliases,
        [t(h) for h in s.held],
        t(s.held_at),
    )
    if s.watches:  # absent when none, as in states written before them
        doc = (*doc, [x for w in s.watches for x in (w.alert_id, t(w.at), w.reported, t(w.reported_at))])
    return msgpack.packb(doc, use_bin_type=True)  # type: ignore[no-any-return]


def encode_forward(target: str, created_ms: int) -> bytes:
    return msgpack.packb((_FORWARD, target, created_ms), use_bin_type=True)  # type: ignore[no-any-return]


def _state(doc: list[Any]) -> CustomerState:
    tag, key, version, latest, horizon, exps, journeys, orders, contacts, alerted, aliases = doc[:11]

    def t(at: int | None) -> int:
        if tag == _STATE_ABSOLUTE:
            return at  # type: ignore[return-value]
        return 0 if at is None else latest - at

    state = CustomerState(key, t(version), latest, t(horizon))
    for i in range(0, len(exps), 5):
        state.exps[exps[i]] = Experience(t(exps[i + 1]), t(exps[i + 2]), exps[i + 3], t(exps[i + 4]))
    for jid, jt, started, last, terminal, channels, dissat, emitted, events in journeys:
        state.journeys[jid] = Journey(
            jid,
            JOURNEY_TYPES[jt],
            t(started),
            t(last),
            t(terminal),
            channels,
            dissat,
            set(array("Q", events)),
            _STATUS[emitted],
        )
    for i in range(0, len(orders), 3):
        state.orders[orders[i]] = (t(orders[i + 1]), orders[i + 2])
    state.contacts = [Contact(c[0], t(c[1]), *c[2:]) for c in contacts]
    state.alerted = [t(a) for a in alerted]
    state.aliases = list(aliases)
    if len(doc) > 11:  # states written before held alerts have neither field
        state.held, state.held_at = [t(h) for h in doc[11]], t(doc[12])
    if len(doc) > 13:
        w = doc[13]
        state.watches = [Watch(w[i], t(w[i + 1]), w[i + 2], t(w[i + 3])) for i in range(0, len(w), 4)]
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
