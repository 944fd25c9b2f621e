"""The arbiter's records for `cx.identity.links`: the contract's model, byte for byte, without pydantic."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from schemas.records import IdentityLink, LinkClaim
from streams.domain.arbiter import Link, arbitrate
from streams.domain.identity import IdentityGraph

_text = st.text(min_size=1, max_size=40)
# DateTime's range and beyond a second's edge: whole seconds (no fraction written) and milliseconds.
_ms = st.one_of(st.integers(0, 4_102_444_800_000), st.integers(0, 4_102_444_800).map(lambda s: s * 1000))


@given(_text, _text, _text, _ms, _text, st.integers(0, 2**62))
def test_a_link_is_written_as_the_contract_model_writes_it(
    identifier: str, key: str, previous: str, linked_ms: int, event_id: str, version: int
) -> None:
    link = Link(identifier, key, previous, linked_ms, event_id, version)
    model = IdentityLink(
        identifier=identifier,
        customer_key=key,
        previous_key=previous,
        linked_at=datetime.fromtimestamp(linked_ms / 1000, UTC),
        event_id=event_id,
        version=version,
    )
    assert link.to_json() == model.model_dump_json().encode()
    assert IdentityLink.model_validate_json(link.to_json()) == model


def test_arbitrate_publishes_a_link_per_identifier_it_moves_with_growing_versions() -> None:
    graph = IdentityGraph()
    out = arbitrate(graph, [LinkClaim("C-1", ("anon:a1", "device:d1"), 1_700_000_000_123, "e1")], 5_000, 8)
    assert [(link.identifier, link.customer_key, link.previous_key) for link in out.links] == [
        ("anon:a1", "C-1", "~anon:a1"),
        ("device:d1", "C-1", "~device:d1"),
    ]
    assert [link.version for link in out.links] == [5_000_000, 5_000_001]
    records = [IdentityLink.model_validate_json(link.to_json()) for link in out.links]
    assert {r.linked_at for r in records} == {datetime(2023, 11, 14, 22, 13, 20, 123000, tzinfo=UTC)}
