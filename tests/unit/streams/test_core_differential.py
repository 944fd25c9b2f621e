"""The native core against its reference model: the same messages must give the same records, the same
dead letters and the same counts (tests/reference/ingest.py is the Python stage the core replaced).

Messages are random touchpoints, mutated at random leaves with hostile values of every JSON type, in
single-event messages and batch envelopes, beside arbitrary bytes; hypothesis shrinks any difference to
a minimal message. The number of messages tried is printed (the decoder's fuzzing count).
"""

from __future__ import annotations

import copy
import os
from collections import Counter
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas.records import RejectReason
from streams.domain.codec import decode_claims, encode_claims, encode_items
from streams.domain.ingest import IngestConfig, IngestResult, Message, ingest, ingest_routed
from streams.domain.routing import route
from tests.reference import ingest as reference
from tests.unit.streams.test_hostile_input import ID_TEXT, LEAVES, NOW_MS, SECRET, TEXT, emails, phones, valid_events

CONFIGS = [
    IngestConfig(SECRET, "CN", frozenset({"null", "0", "-1", "n/a"})),
    IngestConfig(SECRET, "US", frozenset(), future_tolerance_ms=0, raw_id_fields=frozenset({"customer_id"})),
]
TRIED = {"messages": 0}
# CXJ_DIFF_EXAMPLES raises the budget for a long fuzzing run.
EXAMPLES = int(os.environ.get("CXJ_DIFF_EXAMPLES", "400"))
DIFF = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])

ODD = [
    *("", " ", "null", "NULL", "0", "-1", "000-000", "\u200b", "~anon", " C1 ", "a\x00b", "\tC2\n"),
    *("\uff12\uff10\uff12\uff14", "2024-01-01T00:00:00Z", "2999-01-01T00:00:00Z", "1969-12-31T23:59:59Z"),
    *("2024-02-30T00:00:00+00:60", "web", "fax", "page_view", "CNY", "human", "+86 138 0013 8000", "13800138000"),
    *("order-13800138000", "a@b.cn", "x" * 129, "\u00e9" * 65, "1.2.3.4:8080", "2024-05-06"),
]
# Values a hostile or careless feeder puts anywhere: every JSON type, edge numbers, PII, junk, odd text.
NASTY = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**64 - 1),  # what orjson writes; larger ones come as text in test_edges_…
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([0, 1, -1, 1.0, -0.0, 1e12, 1e16, 31_536_000, 31_536_001, 2**63, 4096, 0.5]),
    st.text(TEXT, max_size=40),
    st.text(ID_TEXT, max_size=140),
    st.sampled_from(ODD),
    phones(),
    emails(),
    st.lists(st.integers(0, 3), max_size=3),
    st.dictionaries(st.text(TEXT, max_size=6), st.text(TEXT, max_size=10) | st.integers(-(2**63), 2**63), max_size=3),
)


@pytest.fixture(scope="module", autouse=True)
def _report_count() -> Iterator[None]:
    yield
    print(f"\ncore vs reference: messages compared: {TRIED['messages']}")


@st.composite
def mutated(draw: Any) -> dict[str, Any]:
    """A valid touchpoint with up to three leaves replaced, deleted, or extra keys added."""
    event = copy.deepcopy(draw(valid_events()))
    for _ in range(draw(st.integers(0, 3))):
        path = draw(st.sampled_from(LEAVES))
        target = event
        for key in path[:-1]:
            if not isinstance(target.get(key), dict):
                target[key] = {}
            target = target[key]
        if draw(st.integers(0, 5)) == 0:
            target.pop(path[-1], None)
        else:
            target[path[-1]] = draw(NASTY)
    if draw(st.integers(0, 9)) == 0:
        event[draw(st.sampled_from(["extra", "events", "Identity"]))] = draw(NASTY)
    return event


def _message(draw: Any) -> bytes | None:
    kind = draw(st.integers(0, 9))
    if kind == 0:
        return draw(st.binary(max_size=64) | st.none())
    if kind == 1:
        return orjson.dumps(draw(NASTY))
    if kind <= 4:
        return orjson.dumps({"events": draw(st.lists(mutated() | NASTY, min_size=0, max_size=6))})
    return orjson.dumps(draw(mutated()))


@st.composite
def messages(draw: Any) -> list[Message]:
    n = draw(st.integers(1, 4))
    stamps = st.sampled_from([NOW_MS - 1000, 0, -1, -5, 5_000_000_000_000])
    return [Message(_message(draw), "cx.touchpoints", 3, i, draw(stamps)) for i in range(n)]


def same(core: IngestResult, ref: IngestResult) -> None:
    """Equal results; an invalid_json detail quotes each decoder's own words, so only its reason is compared."""
    assert [(tuple(r), [type(v) for v in r]) for r in core.records] == [
        (tuple(r), [type(v) for v in r]) for r in ref.records
    ]
    strip = lambda d: d._replace(detail="") if d.reason == RejectReason.INVALID_JSON else d  # noqa: E731
    assert [strip(d) for d in core.rejected] == [strip(d) for d in ref.rejected]
    assert core.pii_hashed == ref.pii_hashed
    assert core.replaced_timestamps == ref.replaced_timestamps


@DIFF
@given(batch=messages(), which=st.integers(0, len(CONFIGS) - 1))
def test_core_matches_the_reference_model(batch: list[Message], which: int) -> None:
    TRIED["messages"] += len(batch)
    cfg = CONFIGS[which]
    same(ingest(batch, cfg, NOW_MS), reference.ingest(batch, cfg, NOW_MS))


@pytest.mark.parametrize(
    "raw",
    [
        b"-0",
        b'{"events": []}',
        b'{"events": [1, "x", null, []], "b": 1, "a": 2}',
        b"[" * 1024 + b"]" * 1024,
        b"[" * 1025 + b"]" * 1025,
        b'{"schema_version": 1.0, "identity": {"customer_id": "C1"}}',
        b'{"schema_version": -0, "identity": {"customer_id": "C1"}}',
        b'{"schema_version": 18446744073709551615}',
        b'{"channel": "' + "\u00e9".encode() * 50 + b'", "identity": {"customer_id": "C1"}}',
        b'{"a": 1e400}',
        b'{"events": [{"schema_version": 1, "metrics": {"nps": 184467440737095516160}, "identity": {"phone": 1}}]}',
        b"\xef\xbb\xbf{}",
    ],
)
def test_edges_match_the_reference_model(raw: bytes) -> None:
    batch = [Message(raw, "cx.touchpoints", 0, 7, NOW_MS)]
    same(ingest(batch, CONFIGS[0], NOW_MS), reference.ingest(batch, CONFIGS[0], NOW_MS))


def test_a_large_batch_matches_element_by_element() -> None:
    """Over 64 KiB, each element's size is checked: one over the limit, floats near it, the rest kept."""
    base = orjson.loads(orjson.dumps({"event_id": "e", "schema_version": 1, "occurred_at": "2024-01-01T00:00:00Z",
                                      "source": "s", "channel": "web", "event_type": "page_view",
                                      "identity": {"customer_id": "C1"}}))  # fmt: skip
    big = {**base, "attributes": {"k": "x" * 4096}, "pad": ["y" * 62_000, 1e16]}
    floats = {**base, "pad": [1e15] * 3600}  # 18-byte doubles orjson writes as 1000000000000000.0
    events = [{**base, "event_id": f"e{i}"} for i in range(300)] + [big, floats]
    batch = [Message(orjson.dumps({"events": events}), "cx.touchpoints", 0, 1, NOW_MS)]
    core, ref = ingest(batch, CONFIGS[0], NOW_MS), reference.ingest(batch, CONFIGS[0], NOW_MS)
    same(core, ref)
    assert len(core.records) == 300 and {d.reason for d in core.rejected} == {RejectReason.TOO_LARGE}


# --- stage 1 whole: ingest, route and encode in the core, against the Python route and codec ----------------


def _python_stage1(batch: list[Message], cfg: IngestConfig, lookup: Any, partitions: int) -> tuple[Any, ...]:
    result = ingest(batch, cfg, NOW_MS)
    routed = route(result.records, lookup, partitions)
    stitch = [(p, encode_items(items), len(items)) for p, items in routed.by_partition.items()]
    claims = encode_claims(routed.claims) if routed.claims else None
    channels = list(Counter(r.channel for r in result.records).items())
    return stitch, claims, channels, result.rejected, result.replaced_timestamps, result.pii_hashed


def _links(draw: Any, batch: list[Message], cfg: IngestConfig) -> dict[str, str]:
    """Some of the batch's identifiers linked already (to customers, anonymous keys or one another)."""
    identifiers = sorted({i for r in ingest(batch, cfg, NOW_MS).records for i in r.identifiers})
    keys = st.sampled_from(["C-linked", "C-other", "", *(f"~{i}" for i in identifiers[:3])])
    chosen = draw(st.lists(st.sampled_from(identifiers), unique=True)) if identifiers else []
    return {i: draw(keys) for i in chosen}


@DIFF
@given(batch=messages(), which=st.integers(0, len(CONFIGS) - 1), partitions=st.sampled_from([1, 3, 8]),
       data=st.data())  # fmt: skip
def test_stage_1_in_the_core_sends_the_bytes_the_python_route_and_codec_send(
    batch: list[Message], which: int, partitions: int, data: st.DataObject
) -> None:
    TRIED["messages"] += len(batch)
    cfg = CONFIGS[which]
    links = _links(data.draw, batch, cfg)
    routed = ingest_routed(batch, cfg, NOW_MS, links.get, partitions)
    core = (
        routed.stitch,
        routed.claims,
        routed.channels,
        routed.rejected,
        routed.replaced_timestamps,
        routed.pii_hashed,
    )
    assert core == _python_stage1(batch, cfg, links.get, partitions)


def test_stage_1_in_the_core_routes_the_simulated_traffic_as_python_does() -> None:
    """A day of simulated traffic (every channel, logins that link, 1% broken payloads) with links building up."""
    from datetime import UTC, datetime

    from cxj.simulate.traffic import SimulationConfig, generate_raw
    from cxj.simulate.traffic import messages as batches

    now = datetime.fromtimestamp(NOW_MS / 1000, UTC)
    sim = SimulationConfig(seed=5, customers=300, events=4_000, days=2.0, now=now, invalid_share=0.01)
    raws = [value for _, value, _ in batches(generate_raw(sim), 100)]
    links: dict[str, str] = {}
    sent = 0
    for n, raw in enumerate(raws):
        batch = [Message(raw, "cx.touchpoints", 0, n, NOW_MS)]
        routed = ingest_routed(batch, CONFIGS[0], NOW_MS, links.get, 8)
        expected = _python_stage1(batch, CONFIGS[0], links.get, 8)
        assert (routed.stitch, routed.claims, routed.channels, routed.rejected) == expected[:4]
        sent += sum(items for _, _, items in routed.stitch)
        for claim in decode_claims(routed.claims) if routed.claims else []:  # the arbiter's answer, roughly
            for identifier in claim.identifiers:  # type: ignore[union-attr]
                links.setdefault(identifier, claim.customer_id or f"~{claim.identifiers[0]}")  # type: ignore[union-attr]
    assert sent > 3_500 and len(links) > 100
