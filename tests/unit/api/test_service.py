"""`cxj serve`'s application over real HTTP on loopback, with the broker and ClickHouse replaced by doubles
(the integration suite runs it against the real ones)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import orjson
import pytest
from aiohttp import ClientSession, web
from prometheus_client import CollectorRegistry

from api.auth import digest
from api.feed import Problem
from api.metrics import ApiMetrics
from api.service import build_app, runner
from schemas.api import Accepted, ApiError, Profile
from schemas.settings import ApiToken, Settings
from schemas.touchpoint import MAX_BATCH_BYTES
from tests.factories import touchpoint

FEEDER = {"Authorization": "Bearer feeder-token"}
DESK = {"Authorization": "Bearer desk-token"}
TOKENS = (
    ApiToken(name="feeder", sha256=digest("feeder-token"), sources=("test", "web-*"), rate=2000.0),
    ApiToken(name="desk", sha256=digest("desk-token"), sources=("*",), profiles=True),
)


class Broker:
    """Records what would have been written; `down` makes every write fail as an unacknowledged one."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []
        self.down = False

    @property
    def state(self) -> str:
        return "unavailable" if self.down else "connected"

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def send(self, body: bytes) -> None:
        if self.down:
            raise Problem(503, "unavailable", "the broker did not acknowledge the write", retry_after=5)
        self.sent.append(body)


PROFILE = Profile(customer_key="C1", keys=["C1", "~anon:a1"], churn_risk="elevated", dissatisfied_90d=2,
                  satisfied_90d=0, experience_score=-40.0, lifetime_value=120.5,
                  last_event_at=datetime(2026, 11, 20, tzinfo=UTC), experiences=[], open_journeys=[],
                  touchpoints=[], alerts=[])  # fmt: skip


class Profiles:
    def __init__(self) -> None:
        self.asked: list[str] = []

    async def get(self, text: str) -> Profile | None:
        self.asked.append(text)
        return PROFILE if text in ("C1", "~anon:a1", "phone:+86 138 0013 8000") else None

    def close(self) -> None:
        return None


@pytest.fixture
def broker() -> Broker:
    return Broker()


@pytest.fixture
def profiles() -> Profiles:
    return Profiles()


@pytest.fixture
def metrics() -> ApiMetrics:
    return ApiMetrics.create(CollectorRegistry())


@pytest.fixture
async def client(broker: Broker, profiles: Profiles, metrics: ApiMetrics) -> AsyncIterator[ClientSession]:
    """A real client and the service's own runner on a free loopback port."""
    settings = Settings(api_tokens=TOKENS, pii_secret="s" * 32)
    app_runner = runner(build_app(settings, forwarder=broker, profiles=profiles, metrics=metrics))
    await app_runner.setup()
    site = web.TCPSite(app_runner, "127.0.0.1", 0)
    await site.start()
    port = app_runner.addresses[0][1]
    try:
        async with ClientSession(base_url=f"http://127.0.0.1:{port}") as session:
            yield session
    finally:
        await app_runner.cleanup()


def _count(metrics: ApiMetrics, route: str, code: str) -> float:
    value = metrics.registry.get_sample_value("cx_api_requests_total", {"route": route, "code": code})
    return value or 0.0


async def test_accepted_touchpoints_are_forwarded_as_sent_and_answered_202(
    client: ClientSession, broker: Broker, metrics: ApiMetrics
) -> None:
    body = orjson.dumps({"events": [touchpoint(event_id="a-1"), {**touchpoint(), "channel": "fax"}]})
    answer = await client.post("/v1/touchpoints", data=body, headers=FEEDER)
    assert answer.status == 202
    got = Accepted.model_validate_json(await answer.read())
    assert got.accepted == 1 and [(r.index, r.reason) for r in got.rejected] == [(1, "unknown_channel")]
    assert broker.sent == [body]  # the pipeline stays the place of record: the rejected one goes too
    assert _count(metrics, "/v1/touchpoints", "202") == 1
    assert metrics.registry.get_sample_value("cx_api_touchpoints_total", {"outcome": "rejected"}) == 1


@pytest.mark.parametrize(
    ("headers", "status", "error"),
    [({}, 401, "unauthorized"), ({"Authorization": "Bearer nope"}, 401, "unauthorized"),
     ({"Authorization": "Basic ZmVlZGVy"}, 401, "unauthorized")],
)  # fmt: skip
async def test_no_token_or_an_unknown_one_is_401_and_sends_nothing(
    client: ClientSession, broker: Broker, headers: dict[str, str], status: int, error: str
) -> None:
    answer = await client.post("/v1/touchpoints", data=orjson.dumps(touchpoint()), headers=headers)
    assert (answer.status, ApiError.model_validate_json(await answer.read()).error) == (status, error)
    assert answer.headers["WWW-Authenticate"].startswith("Bearer")
    assert broker.sent == []


async def test_a_source_the_token_may_not_send_is_403_for_the_whole_request(
    client: ClientSession, broker: Broker
) -> None:
    body = orjson.dumps({"events": [touchpoint(), {**touchpoint(), "source": "callcentre-pbx"}]})
    answer = await client.post("/v1/touchpoints", data=body, headers=FEEDER)
    assert answer.status == 403
    assert "touchpoint 1" in ApiError.model_validate_json(await answer.read()).detail
    assert broker.sent == []
    ok = await client.post("/v1/touchpoints", data=orjson.dumps({**touchpoint(), "source": "web-shop"}),
                           headers=FEEDER)  # fmt: skip
    assert ok.status == 202


@pytest.mark.parametrize(
    ("body", "status", "error"),
    [(b"{", 400, "invalid_json"), (b"[]", 400, "not_an_object"), (b'{"events": []}', 400, "bad_request"),
     (orjson.dumps({"events": [touchpoint()] * 1001}), 413, "too_large"),
     (b" " * (MAX_BATCH_BYTES + 10), 413, "too_large")],
)  # fmt: skip
async def test_a_body_refused_whole_is_answered_with_its_reason_and_never_forwarded(
    client: ClientSession, broker: Broker, body: bytes, status: int, error: str
) -> None:
    answer = await client.post("/v1/touchpoints", data=body, headers=FEEDER)
    assert (answer.status, ApiError.model_validate_json(await answer.read()).error) == (status, error)
    assert broker.sent == []


async def test_over_the_tokens_rate_is_429_with_retry_after(client: ClientSession, broker: Broker) -> None:
    batch = orjson.dumps({"events": [touchpoint(event_id=f"r-{i}") for i in range(1000)]})
    codes = [(await client.post("/v1/touchpoints", data=batch, headers=FEEDER)).status for _ in range(2)]
    assert codes == [202, 202]  # the burst: 2,000 (the token's rate for one second)
    refused = await client.post("/v1/touchpoints", data=batch, headers=FEEDER)
    assert refused.status == 429 and int(refused.headers["Retry-After"]) >= 1
    assert len(broker.sent) == 2
    # another token has its own bucket
    assert (await client.post("/v1/touchpoints", data=batch, headers=DESK)).status == 202


async def test_a_broker_that_does_not_acknowledge_is_503_with_retry_after(
    client: ClientSession, broker: Broker, metrics: ApiMetrics
) -> None:
    broker.down = True
    answer = await client.post("/v1/touchpoints", data=orjson.dumps(touchpoint()), headers=FEEDER)
    assert answer.status == 503 and answer.headers["Retry-After"] == "5"
    assert ApiError.model_validate_json(await answer.read()).error == "unavailable"
    assert (await (await client.get("/healthz")).json())["broker"] == "unavailable"
    assert _count(metrics, "/v1/touchpoints", "503") == 1
    broker.down = False
    assert (await client.post("/v1/touchpoints", data=orjson.dumps(touchpoint()), headers=FEEDER)).status == 202


async def test_a_profile_is_for_tokens_allowed_to_read_them(client: ClientSession, profiles: Profiles) -> None:
    assert (await client.get("/v1/customers/C1")).status == 401
    assert (await client.get("/v1/customers/C1", headers=FEEDER)).status == 403
    answer = await client.get("/v1/customers/phone:+86%20138%200013%208000", headers=DESK)
    assert answer.status == 200
    assert Profile.model_validate_json(await answer.read()) == PROFILE
    assert profiles.asked == ["phone:+86 138 0013 8000"]  # decoded once, as typed
    missing = await client.get("/v1/customers/nobody", headers=DESK)
    assert (missing.status, ApiError.model_validate_json(await missing.read()).error) == (404, "not_found")


async def test_the_access_log_names_the_route_never_the_id(
    client: ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="aiohttp.access"):
        await client.get("/v1/customers/phone:+86%20138%200013%208000", headers=DESK)
        await client.get("/no/such/path/138%200013%208000", headers=DESK)
    logged = [r.getMessage() for r in caplog.records if r.name == "aiohttp.access"]
    assert len(logged) == 2 and "GET /v1/customers/{id} 200" in logged[0] and "GET other 404" in logged[1]
    assert not any("138" in line or "8000" in line for line in logged)


async def test_unknown_routes_and_methods_answer_json_and_count_as_other(
    client: ClientSession, metrics: ApiMetrics
) -> None:
    answer = await client.get("/v2/nothing")
    assert (answer.status, ApiError.model_validate_json(await answer.read()).error) == (404, "not_found")
    wrong = await client.get("/v1/touchpoints", headers=FEEDER)
    assert wrong.status == 405
    assert _count(metrics, "other", "404") == 1


async def test_openapi_and_metrics_are_served(client: ClientSession) -> None:
    document = await (await client.get("/openapi.json")).json()
    assert set(document["paths"]) >= {"/v1/touchpoints", "/v1/customers/{id}"}
    await client.get("/healthz")
    text = await (await client.get("/metrics")).text()
    assert 'cx_api_requests_total{code="200",route="/healthz"} 1.0' in text
    assert "cx_api_request_seconds_bucket" in text
