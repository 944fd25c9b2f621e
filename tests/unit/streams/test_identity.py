"""Identity of Contract 2: customer keys, links, merges, conflicts, the identifier limit, junk ids."""

from __future__ import annotations

import itertools

import orjson
import pytest

from schemas.records import LinkClaim, TouchpointRecord
from schemas.settings import DEFAULT_BLOCKLIST
from streams.domain.identity import IdentityGraph, claim_for, is_anonymous, route_key, self_key
from streams.domain.ingest import IngestConfig, Message, ingest
from tests.factories import SECRET, T0, record, touchpoint

NOBODY: dict[str, str] = {}


def claim(customer_id: str | None, *identifiers: str, event_id: str = "e1") -> LinkClaim:
    return LinkClaim(customer_id, identifiers, 1_000, event_id)


def linked(graph: IdentityGraph, *claims: LinkClaim) -> IdentityGraph:
    for c in claims:
        graph.apply(c)
    return graph


# --- customer keys at ingest ----------------------------------------------------------------


def test_route_key_is_the_customer_id_when_given() -> None:
    rec = record(identity={"customer_id": "C1", "anonymous_id": "a1"})
    assert route_key(rec, {"anon:a1": "C9"}.get) == "C1"


def test_route_key_is_what_the_identifiers_already_resolve_to() -> None:
    rec = record(identity={"anonymous_id": "a1", "device_id": "d1"})
    assert route_key(rec, {"device:d1": "C7"}.get) == "C7"
    assert route_key(rec, {"anon:a1": "C5", "device:d1": "C7"}.get) == "C5"  # first identifier first


@pytest.mark.parametrize(
    ("identity", "key"),
    [
        ({"anonymous_id": "a1", "device_id": "d1"}, "~anon:a1"),
        ({"device_id": "d1", "wechat_openid": "w1"}, "~device:d1"),
        ({"wechat_openid": "w1"}, "~wechat:w1"),
    ],
)
def test_route_key_of_an_unknown_touchpoint_derives_from_its_first_identifier(
    identity: dict[str, str], key: str
) -> None:
    assert route_key(record(identity=identity), NOBODY.get) == key
    assert is_anonymous(key)


def test_an_anonymous_phone_key_carries_the_hash_never_the_number() -> None:
    key = route_key(record(identity={"phone": "13800138000"}), NOBODY.get)
    assert key.startswith("~phone:")
    assert "13800138000" not in key and len(key) == len("~phone:") + 64


@pytest.mark.parametrize(
    ("identity", "mapping", "claims"),
    [
        ({"customer_id": "C1"}, {}, False),
        ({"anonymous_id": "a1"}, {}, False),
        ({"customer_id": "C1", "anonymous_id": "a1"}, {}, True),
        ({"customer_id": "C1", "anonymous_id": "a1"}, {"anon:a1": "C1"}, False),
        ({"customer_id": "C1", "anonymous_id": "a1"}, {"anon:a1": "C2"}, True),
        ({"anonymous_id": "a1", "device_id": "d1"}, {}, True),
        ({"anonymous_id": "a1", "device_id": "d1"}, {"anon:a1": "C1", "device:d1": "C1"}, False),
        ({"anonymous_id": "a1", "device_id": "d1"}, {"anon:a1": "C1"}, True),
    ],
)
def test_a_claim_is_made_only_when_identifiers_arrive_together_not_yet_linked(
    identity: dict[str, str], mapping: dict[str, str], claims: bool
) -> None:
    rec = record(identity=identity)
    key = route_key(rec, mapping.get)
    claim_ = claim_for(rec, key, mapping.get)
    assert (claim_ is not None) is claims
    if claim_ is not None:
        assert (claim_.customer_id, claim_.identifiers, claim_.event_id) == (
            rec.customer_id,
            rec.identifiers,
            rec.event_id,
        )


# --- the graph -------------------------------------------------------------------------------


def test_identifiers_arriving_together_are_linked_under_one_anonymous_key() -> None:
    graph = IdentityGraph()
    out = graph.apply(claim(None, "device:d1", "anon:a1"))
    assert graph.key_of("anon:a1") == graph.key_of("device:d1") == "~anon:a1"
    assert {(link.identifier, link.customer_key) for link in out.links} == {
        ("anon:a1", "~anon:a1"),
        ("device:d1", "~anon:a1"),
    }
    assert out.conflicts == []


def test_an_anonymous_key_linked_to_a_customer_id_merges_into_the_customer() -> None:
    graph = linked(IdentityGraph(), claim(None, "anon:a1", "device:d1"))
    out = graph.apply(claim("C1", "device:d1"))
    assert out.merges == [("~anon:a1", "C1")]
    assert graph.key_of("anon:a1") == graph.key_of("device:d1") == "C1"
    assert {link.previous_key for link in out.links} == {"~anon:a1"}
    # Later touchpoints with only the old identifiers resolve to the customer.
    assert route_key(record(identity={"anonymous_id": "a1"}), graph.mapping.get) == "C1"


def test_two_customer_ids_never_merge_and_the_conflict_is_counted() -> None:
    graph = linked(IdentityGraph(), claim("A", "phone:h1", "anon:a1"))
    out = graph.apply(claim("B", "phone:h1", "device:d9", event_id="e2"))
    assert graph.key_of("phone:h1") == "A"
    assert graph.key_of("anon:a1") == "A"
    assert graph.key_of("device:d9") == "B"
    assert out.merges == [("~device:d9", "B")]
    [conflict] = out.conflicts
    assert (
        conflict.identifier,
        conflict.existing_key,
        conflict.claimed_key,
        conflict.reason,
        conflict.event_id,
    ) == (
        "phone:h1",
        "A",
        "B",
        "customer_conflict",
        "e2",
    )


def test_the_touchpoint_of_a_conflicting_claim_is_attributed_to_its_own_customer_id() -> None:
    rec = record(identity={"customer_id": "B", "anonymous_id": "a1"})
    assert route_key(rec, {"anon:a1": "A"}.get) == "B"


def test_an_anonymous_claim_touching_two_customers_glues_neither() -> None:
    graph = linked(IdentityGraph(), claim("A", "device:d1"), claim("B", "phone:p1"))
    out = graph.apply(claim(None, "device:d1", "phone:p1"))
    assert (graph.key_of("device:d1"), graph.key_of("phone:p1")) == ("A", "B")
    assert [c.reason for c in out.conflicts] == ["customer_conflict"]
    assert out.merges == []


@pytest.mark.parametrize("limit", [2, 3, 50])
def test_a_customer_holds_at_most_the_limit_and_further_links_are_refused_and_counted(limit: int) -> None:
    graph = IdentityGraph(max_identifiers=limit)
    ids = [f"device:d{i}" for i in range(limit + 2)]
    out = graph.apply(claim("C1", *ids))
    assert graph.members["C1"] == set(ids[:limit])
    assert [(c.identifier, c.reason) for c in out.conflicts] == [(i, "identifier_limit") for i in ids[limit:]]
    for refused in ids[limit:]:
        assert graph.key_of(refused) == self_key(refused)


def test_the_limit_refuses_a_whole_anonymous_component_that_would_not_fit() -> None:
    graph = linked(IdentityGraph(max_identifiers=3), claim("C1", "device:d1", "device:d2"))
    graph.apply(claim(None, "anon:x1", "anon:x2"))
    out = graph.apply(claim("C1", "anon:x1"))
    assert [c.reason for c in out.conflicts] == ["identifier_limit"]
    assert graph.key_of("anon:x1") == graph.key_of("anon:x2") == "~anon:x1"
    assert len(graph.members["C1"]) == 2


def test_anonymous_keys_do_not_depend_on_claim_order() -> None:
    claims = [
        claim(None, "wechat:w1", "phone:p1"),
        claim(None, "device:d1", "phone:p1"),
        claim(None, "anon:a1", "wechat:w1"),
    ]
    finals = set()
    for order in itertools.permutations(claims):
        graph = linked(IdentityGraph(), *order)
        finals.add(tuple(sorted(graph.mapping.items())))
    [final] = finals
    assert {key for _, key in final} == {"~anon:a1"}


def test_load_rebuilds_the_graph_from_the_links_log_last_one_wins() -> None:
    graph = IdentityGraph()
    graph.load([("anon:a1", "~anon:a1"), ("device:d1", "~anon:a1"), ("anon:a1", "C1"), ("device:d1", "C1")])
    assert graph.mapping == {"anon:a1": "C1", "device:d1": "C1"}
    assert graph.members == {"C1": {"anon:a1", "device:d1"}}


# --- junk identifiers never link ---------------------------------------------------------------


def _stitch_two_customers(shared: dict[str, str]) -> tuple[list[TouchpointRecord], IdentityGraph, list[str]]:
    """C1 then C2 send the same extra identity fields, through the real ingest, routing and arbiter."""
    cfg = IngestConfig(SECRET, "CN", frozenset(DEFAULT_BLOCKLIST))
    graph = IdentityGraph()
    replica: dict[str, str] = {}
    conflicts: list[str] = []
    recs: list[TouchpointRecord] = []
    for customer in ("C1", "C2"):
        event = touchpoint(at=T0, identity={"customer_id": customer, **shared})
        [rec] = ingest([Message(orjson.dumps(event), "cx.touchpoints", 0, 0, 0)], cfg, 2_000_000_000_000).records
        recs.append(rec)
        found = claim_for(rec, route_key(rec, replica.get), replica.get)
        if found is not None:
            out = graph.apply(found)
            replica.update((link.identifier, link.customer_key) for link in out.links)
            conflicts += [c.reason for c in out.conflicts]
    return recs, graph, conflicts


@pytest.mark.parametrize(
    "junk",
    [
        {"device_id": "null"},
        {"device_id": "0"},
        {"anonymous_id": "00000000-0000-0000-0000-000000000000"},
        {"phone": "0000000"},
        {"email": "   "},
        {"device_id": "unknown", "wechat_openid": "undefined"},
    ],
    ids=["null", "zero", "zero-uuid", "zero-phone", "blank", "blocklisted"],
)
def test_junk_identifiers_shared_by_two_customers_never_link_them(junk: dict[str, str]) -> None:
    recs, graph, conflicts = _stitch_two_customers(junk)
    assert [r.identifiers for r in recs] == [(), ()]
    assert graph.mapping == {}
    assert conflicts == []


def test_a_real_identifier_shared_by_two_customers_stays_with_the_first() -> None:
    # The control for the junk test above: the same path does link a real identifier.
    _, graph, conflicts = _stitch_two_customers({"device_id": "kiosk-7"})
    assert graph.mapping == {"device:kiosk-7": "C1"}
    assert conflicts == ["customer_conflict"]
