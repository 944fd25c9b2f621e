"""Tokens, sources and rates of `cxj serve` (pure)."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from api.auth import Bucket, Tokens, digest
from schemas.settings import ApiToken


def _tokens(*entries: ApiToken, rate: float = 1000.0) -> Tokens:
    return Tokens(entries, default_rate=rate, min_capacity=1000)


WEB = ApiToken(name="web", sha256=digest("web-secret"), sources=("web-frontend", "app-*"))
DESK = ApiToken(name="desk", sha256=digest("desk-secret"), sources=("*",), profiles=True, rate=10.0)


def test_a_token_is_known_by_its_sha256_only() -> None:
    assert digest("web-secret") == hashlib.sha256(b"web-secret").hexdigest()
    tokens = _tokens(WEB, DESK)
    grant = tokens.grant("Bearer web-secret")
    assert grant is not None and grant.name == "web" and not grant.profiles
    assert tokens.grant("bearer   desk-secret").name == "desk"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "header", [None, "", "Bearer", "Bearer ", "Basic d2ViOnNlY3JldA==", "web-secret", "Bearer web-secret2", "Bearerweb"]
)
def test_a_missing_malformed_or_unknown_token_has_no_grant(header: str | None) -> None:
    assert _tokens(WEB).grant(header) is None


def test_a_token_may_send_the_sources_it_names_or_matches() -> None:
    grant = _tokens(WEB).grant("Bearer web-secret")
    assert grant is not None
    assert grant.may_send("web-frontend") and grant.may_send("app-ios") and grant.may_send("app-")
    assert not grant.may_send("callcentre-pbx") and not grant.may_send("web-frontend2")
    assert not grant.may_send("APP-ios")  # case matters: sources are stored as sent
    assert _tokens(DESK).grant("Bearer desk-secret").may_send("anything at all")  # type: ignore[union-attr]


def test_a_token_over_its_rate_waits_whole_seconds_and_refills() -> None:
    grant = _tokens(DESK).grant("Bearer desk-secret")  # 10 per second, bursts up to one batch (1,000)
    assert grant is not None
    assert grant.retry_after(1000, now=100.0) == 0  # a full batch fits the burst
    assert grant.retry_after(5, now=100.0) == 1  # nothing left: 5 more need 0.5 s, said as 1
    assert grant.retry_after(50, now=100.0) == 5
    assert grant.retry_after(5, now=100.5) == 0  # refilled 5 in half a second
    assert grant.retry_after(1, now=100.5) == 1


@given(st.lists(st.tuples(st.integers(1, 1000), st.floats(0, 5)), max_size=60))
def test_a_bucket_lets_through_at_most_its_burst_plus_its_rate_and_says_when_the_rest_fits(
    requests: list[tuple[int, float]],
) -> None:
    bucket = Bucket(rate=100.0, capacity=1000.0)
    now, allowed = 0.0, 0
    for n, gap in requests:
        now += gap
        wait = bucket.take(n, now)
        if wait == 0.0:
            allowed += n
        else:  # refused: nothing taken, and after the wait it fits
            assert Bucket(100.0, 1000.0, level=bucket.level, at=now).take(n, now + wait + 1e-9) == 0.0
    assert allowed <= 1000 + 100.0 * now + 1e-6
