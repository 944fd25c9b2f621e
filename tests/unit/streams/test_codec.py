"""msgpack encodings: customer state, forwards, stage-to-stage items and link claims round-trip."""

from __future__ import annotations

import pytest

from schemas.records import LinkClaim, TouchpointRecord
from streams.domain.codec import Item, decode_claims, decode_items, encode_claims, encode_items
from tests.factories import T0, days, policy, record
from tests.reference.codec import Forward, decode_entry, decode_state, encode_forward, encode_state
from tests.reference.customer import CustomerState, event_hash
from tests.reference.signals import classify

P = policy()


def _rich_state() -> CustomerState:
    """A state with every part filled: experiences, journeys of all types, orders, contacts, alerts."""
    state = CustomerState("C1")
    recs = [
        record(event_type="contact_started", channel="phone", context={"case_id": "K1", "contact_id": "c1"}),
        record(
            event_type="contact_started",
            channel="phone",
            at=T0 + days(1),
            context={"case_id": "K1", "contact_id": "c2"},
        ),
        record(event_type="case_resolved", at=T0 + days(2), context={"case_id": "K1"}),
        record(event_type="order_placed", context={"order_id": "O1"}, metrics={"amount": 99.95}),
        record(event_type="delivery_delayed", channel="logistics", at=T0 + days(3), context={"order_id": "O1"}),
        record(event_type="survey_response", channel="survey", context={"contact_id": "c9"}, metrics={"csat": 5}),
        record(event_type="page_view"),
        record(event_type="page_view", channel="app", at=T0 + days(4)),
    ]
    for rec in recs:
        state.apply(rec, classify(P.classifier, rec), event_hash(rec.event_id), P)
    state.version = 1_790_000_000_000
    state.horizon = 12_345
    state.alerted = [1_000, 2_000]
    state.aliases = ["~anon:a1", "~device:d1"]
    state.held, state.held_at = [3_000], 1_790_000_000_500
    next(iter(state.journeys.values())).emitted = "open"
    return state


def test_a_customer_state_round_trips() -> None:
    state = _rich_state()
    assert {j.jtype for j in state.journeys.values()} == {"purchase", "service", "browse"}
    assert any(c.flagged for c in state.contacts)
    decoded = decode_state(encode_state(state))
    assert decoded == state
    assert decoded.counters(P) == state.counters(P)
    assert decoded.lifetime_value() == state.lifetime_value()


def test_an_empty_state_round_trips() -> None:
    assert decode_state(encode_state(CustomerState("~anon:x"))) == CustomerState("~anon:x")


def test_a_state_written_before_held_alerts_existed_decodes_with_none_held() -> None:
    import msgpack

    doc = msgpack.unpackb(encode_state(_rich_state()), raw=False)
    old = decode_state(msgpack.packb(doc[:11], use_bin_type=True))
    assert (old.held, old.held_at, old.alerted) == ([], 0, [1_000, 2_000])


def test_encoding_is_deterministic() -> None:
    state = _rich_state()
    assert encode_state(state) == encode_state(decode_state(encode_state(state)))


def test_a_forward_round_trips_and_is_not_a_state() -> None:
    data = encode_forward("C1", 1_790_000_000_000)
    assert decode_entry(data) == Forward("C1", 1_790_000_000_000)
    with pytest.raises(ValueError, match="forward"):
        decode_state(data)


def _records() -> list[TouchpointRecord]:
    return [
        record(
            event_type="contact_ended",
            channel="phone",
            identity={"customer_id": "C1", "anonymous_id": "a1", "phone": "13800138000"},
            context={"case_id": "K1", "contact_id": "c1", "agent_id": "ag"},
            metrics={
                "wait_seconds": 61.5,
                "transfers": 2,
                "handled_by": "bot",
                "resolved": False,
                "sentiment": -0.75,
                "amount": 12.3,
                "currency": "CNY",
            },
            attributes={"queue": "billing", "note": "中文"},
        ),
        record(identity={"anonymous_id": "a2"}, key="~anon:a2"),
    ]


def test_items_round_trip_every_kind() -> None:
    tp1, tp2 = _records()
    state = _rich_state()
    items = [
        Item("tp", tp1.key, tp1),
        Item("merge", "~anon:a2", None, "C1"),
        Item("state", "C1", None, "~anon:a2", encode_state(state)),
        Item("tp", tp2.key, tp2),
    ]
    decoded = decode_items(encode_items(items))
    assert [(it.kind, it.key, it.target, it.blob) for it in decoded] == [
        (it.kind, it.key, it.target, it.blob) for it in items
    ]
    for got, sent in zip([decoded[0].record, decoded[3].record], [tp1, tp2], strict=True):
        assert got is not None
        assert got._replace(identifiers=tuple(got.identifiers)) == sent
    assert decode_state(decoded[2].blob) == state


def test_a_record_round_trips_exactly() -> None:
    [rec] = _records()[:1]
    [item] = decode_items(encode_items([Item("tp", rec.key, rec)]))
    assert item.record == rec


def test_a_tp_item_is_keyed_by_its_record() -> None:
    rec = _records()[1]
    [item] = decode_items(encode_items([Item("tp", rec.key, rec)]))
    assert item.key == rec.key == "~anon:a2"


def test_link_claims_round_trip() -> None:
    claims = [
        LinkClaim("C1", ("anon:a1", "device:d1"), 1_000, "e1"),
        LinkClaim(None, ("phone:h",), 2_000, "e2"),
    ]
    decoded = decode_claims(encode_claims(claims))
    assert [c._replace(identifiers=tuple(c.identifiers)) for c in decoded] == claims
