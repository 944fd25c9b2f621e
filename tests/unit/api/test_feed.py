"""A POST body as the pipeline will see it: refused whole, or validated by the pipeline's own checks (pure)."""

from __future__ import annotations

import time
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from api.feed import Problem, parse, sources, validate
from schemas.touchpoint import MAX_BATCH_BYTES, MAX_BATCH_EVENTS, MAX_EVENT_BYTES
from streams.domain.ingest import IngestConfig, Message, ingest
from streams.domain.pii import redact_text
from tests.factories import touchpoint

CFG = IngestConfig(pii_secret=b"s" * 32)


def _now() -> int:
    return int(time.time() * 1000)


@pytest.mark.parametrize(
    ("body", "status", "error"),
    [
        (b"", 400, "bad_request"),
        (b"  \n", 400, "bad_request"),
        (b"{", 400, "invalid_json"),
        (b"\xff\xfe", 400, "invalid_json"),
        (b"[1, 2]", 400, "not_an_object"),
        (b'"text"', 400, "not_an_object"),
        (b"null", 400, "not_an_object"),
        (b'{"events": 3}', 400, "bad_request"),
        (b'{"events": []}', 400, "bad_request"),
        (orjson.dumps({"events": [{}] * (MAX_BATCH_EVENTS + 1)}), 413, "too_large"),
        (orjson.dumps({**touchpoint(), "attributes": {"a": "x" * MAX_EVENT_BYTES}}), 413, "too_large"),
        (b" " * (MAX_BATCH_BYTES + 1), 413, "too_large"),
    ],
)
def test_a_body_refused_whole_says_why(body: bytes, status: int, error: str) -> None:
    with pytest.raises(Problem) as refused:
        parse(body)
    assert (refused.value.status, refused.value.error) == (status, error)
    assert refused.value.detail


def test_a_single_touchpoint_and_a_batch_are_their_touchpoints() -> None:
    one = touchpoint()
    assert parse(orjson.dumps(one)) == [one]
    batch = [touchpoint(), {"not": "a touchpoint"}, 7]
    assert parse(orjson.dumps({"events": batch})) == batch
    assert sources(batch) == [(0, "test")]


def test_the_answer_names_each_rejected_touchpoint_with_the_pipelines_reason() -> None:
    good = touchpoint("contact_ended", identity={"customer_id": "C1"})
    body = orjson.dumps({"events": [good, {**good, "event_id": "e-2", "channel": "fax"},
                                    {**good, "event_id": "e-3", "identity": {}}, good]})  # fmt: skip
    answer = validate(body, CFG, _now())
    assert answer.accepted == 2  # the duplicate is the pipeline's to drop, as any duplicate
    assert [(r.index, r.event_id, r.reason) for r in answer.rejected] == [
        (1, "e-2", "unknown_channel"),
        (2, "e-3", "missing_identity"),
    ]


def test_a_rejected_touchpoints_id_is_answered_without_the_pii_in_it() -> None:
    body = orjson.dumps({**touchpoint(identity={}), "event_id": "ann@example.com +8613800138000"})
    [rejected] = validate(body, CFG, _now()).rejected
    assert "ann@example.com" not in rejected.event_id and "13800138000" not in rejected.event_id


_events = st.one_of(
    st.builds(lambda i: touchpoint(event_id=f"ok-{i}"), st.integers(0, 10**6)),
    st.builds(lambda c: {**touchpoint(), "channel": c}, st.text(max_size=8)),
    st.builds(lambda v: {**touchpoint(), "schema_version": v}, st.integers(-2, 3)),
    st.builds(lambda m: {**touchpoint(), "metrics": {"csat": m}}, st.integers(-3, 9)),
    st.builds(lambda: {**touchpoint(), "identity": {"phone": "not a phone"}}),
    st.dictionaries(st.text(max_size=5), st.integers(-(2**53), 2**53), max_size=3),
    st.integers(-(2**53), 2**53),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(_events, min_size=1, max_size=20))
def test_the_answer_is_what_the_pipeline_will_do_with_the_body(events: list[Any]) -> None:
    body = orjson.dumps({"events": events})
    now = _now()
    answer = validate(body, CFG, now)
    piped = ingest([Message(body, "cx.touchpoints", 0, 17, now)], CFG, now)
    assert answer.accepted == len(piped.records)
    assert [(r.index, r.reason, r.detail) for r in answer.rejected] == [
        (d.index, d.reason.value, redact_text(d.detail)) for d in piped.rejected
    ]
    assert answer.accepted + len(answer.rejected) == len(events)
