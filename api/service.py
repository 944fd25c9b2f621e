"""The aiohttp application of `cxj serve`: routes, errors as JSON, metrics, and what stands behind them.

- `POST /v1/touchpoints`: a token's touchpoints, validated as the pipeline validates them (`api.feed`) and
  forwarded unchanged to `cx.touchpoints`; answered 202 only once the broker acknowledged the write
  (acks=all), 503 with `Retry-After` when it did not in `CXJ_API_SEND_TIMEOUT`. A retry after a 503 may
  deliver a body twice: the pipeline keeps one touchpoint per `event_id`, so it changes nothing downstream.
- `GET /v1/customers/{id}`: the profile (`sinks.customers`) read as the BI user; ids are never logged (the
  access log names the route, not the path).
- `/openapi.json`, `/healthz`, `/metrics` (`api.metrics`).
"""

from __future__ import annotations

import asyncio
import logging
import queue
import signal
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Final, Protocol

import orjson
from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from pydantic import BaseModel

from api.auth import Grant, Tokens
from api.feed import TOPIC, Problem, parse, sources, validate
from api.metrics import ROUTES, ApiMetrics
from api.openapi import document
from schemas.api import ApiError, Profile
from schemas.errors import ConfigError, SinkError, SinkUnavailable, StackError
from schemas.settings import Settings
from schemas.touchpoint import MAX_BATCH_BYTES, MAX_BATCH_EVENTS
from sinks.clickhouse import ClickHouse
from sinks.customers import profile
from streams.domain.ingest import IngestConfig
from streams.runtime.policies import ingest_config_from
from streams.runtime.topics import MAX_REQUEST_BYTES

__all__ = ["Forwarder", "KafkaForwarder", "ProfileSource", "Profiles", "build_app", "run", "runner"]

log = logging.getLogger("cxj.serve")

BROKER_RETRY_SECONDS: Final = 5


class Forwarder(Protocol):
    """Where accepted bodies go; `send` returns once the broker acknowledged, else raises Problem(503)."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def send(self, body: bytes) -> None: ...

    @property
    def state(self) -> str: ...


class ProfileSource(Protocol):
    """Where profiles come from; `get` returns None for an id ClickHouse knows nothing of."""

    async def get(self, text: str) -> Profile | None: ...

    def close(self) -> None: ...


class KafkaForwarder:
    """One aiokafka producer (acks=all), started lazily so the service runs, answering 503, while the
    broker is away, and reconnects by itself when it is back."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._producer: Any = None
        self._lock = asyncio.Lock()
        self._state = "not connected"

    @property
    def state(self) -> str:
        return self._state

    async def start(self) -> None:
        try:
            await self._connected()
        except Problem:
            log.warning("the broker at %s does not answer yet; POSTs get 503 until it does",
                        self.settings.kafka_bootstrap)  # fmt: skip

    async def _connected(self) -> Any:
        if self._producer is not None:
            return self._producer
        async with self._lock:
            if self._producer is None:
                producer = AIOKafkaProducer(
                    bootstrap_servers=self.settings.kafka_bootstrap,
                    client_id="cx-journeys-api",
                    acks="all",
                    linger_ms=2,
                    max_request_size=MAX_REQUEST_BYTES,
                    # A batch not acknowledged in time fails on its own, so a 503 rarely leaves a copy behind.
                    request_timeout_ms=int(self.settings.api_send_timeout * 1000),
                    **self.settings.aiokafka_options(),
                )
                try:
                    await asyncio.wait_for(producer.start(), self.settings.api_send_timeout)
                except (KafkaError, OSError, TimeoutError) as exc:
                    await producer.stop()
                    self._state = "unavailable"
                    raise _unavailable(f"the broker does not answer ({type(exc).__name__})") from None
                self._producer = producer
                self._state = "connected"
        return self._producer

    async def send(self, body: bytes) -> None:
        producer = await self._connected()
        try:
            future = await asyncio.wait_for(producer.send(TOPIC, body), self.settings.api_send_timeout)
            await asyncio.wait_for(future, self.settings.api_send_timeout + 1.0)
        except (KafkaError, TimeoutError) as exc:
            self._state = "unavailable"
            raise _unavailable(f"the broker did not acknowledge the write ({type(exc).__name__})") from None
        self._state = "connected"

    async def stop(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None


def _unavailable(detail: str) -> Problem:
    return Problem(503, "unavailable", f"{detail}; nothing was stored, retry", retry_after=BROKER_RETRY_SECONDS)


class Profiles:
    """Profiles read over a few ClickHouse connections (the BI user), each used by one thread at a time."""

    def __init__(self, settings: Settings, connections: int | None = None) -> None:
        self.settings = settings
        size = connections or settings.api_clickhouse_connections
        self._pool: queue.SimpleQueue[Any] = queue.SimpleQueue()
        for _ in range(size):
            self._pool.put(ClickHouse(settings.clickhouse_bi, connect_timeout=2.0, send_timeout=10.0))
        self._executor = ThreadPoolExecutor(max_workers=size, thread_name_prefix="cx-profile")

    def _read(self, text: str) -> Profile | None:
        ch = self._pool.get()
        try:
            return profile(ch, self.settings, text)
        finally:
            self._pool.put(ch)

    async def get(self, text: str) -> Profile | None:
        return await asyncio.get_running_loop().run_in_executor(self._executor, self._read, text)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


class RouteAccessLogger(AbstractAccessLogger):
    """The access log names the route template, never the path: a path may hold a customer id or a phone."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        self.logger.info("%s %s %s %.1f ms", request.method, _route(request), response.status, time * 1000)


def _route(request: web.BaseRequest) -> str:
    info = getattr(request, "match_info", None)
    route = getattr(info, "route", None)
    resource = getattr(route, "resource", None)
    name = getattr(resource, "canonical", None)
    return name if name in ROUTES else "other"


def _json(model: BaseModel, status: int, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(body=model.model_dump_json().encode(), status=status, headers=headers,
                        content_type="application/json")  # fmt: skip


def _problem(p: Problem) -> web.Response:
    headers = {"Retry-After": str(p.retry_after)} if p.retry_after else {}
    if p.status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="cx-journeys"'
    return _json(ApiError(error=p.error, detail=p.detail), p.status, headers)


_HTTP_ERRORS: Final = {400: "bad_request", 404: "not_found", 405: "method_not_allowed", 413: "too_large"}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


async def _answer(request: web.Request, handler: Handler, route: str) -> web.StreamResponse:
    """The handler's answer; a refusal, an HTTP error or a failure as a JSON `ApiError`."""
    try:
        return await handler(request)
    except Problem as p:
        return _problem(p)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        slug = _HTTP_ERRORS.get(exc.status, "http_error")
        detail = exc.reason if exc.status != 413 else f"body over {MAX_BATCH_BYTES:,} bytes"
        return _json(ApiError(error=slug, detail=detail), exc.status)
    except Exception:
        log.exception("%s %s failed", request.method, route)
        return _json(ApiError(error="internal_error", detail="the service failed; see its log"), 500)


def build_app(
    settings: Settings, *, forwarder: Forwarder, profiles: ProfileSource | None, metrics: ApiMetrics | None = None
) -> web.Application:
    """The application; `forwarder` and `profiles` are started and stopped with it."""
    tokens = Tokens(settings.api_tokens, default_rate=settings.api_rate, min_capacity=MAX_BATCH_EVENTS)
    cfg: IngestConfig = ingest_config_from(settings)
    openapi = orjson.dumps(document())
    m = metrics or ApiMetrics.create(CollectorRegistry())

    @web.middleware
    async def measured(request: web.Request, handler: Handler) -> web.StreamResponse:
        started = time.perf_counter()
        route = _route(request)
        response = await _answer(request, handler, route)
        m.requests.labels(route, str(response.status)).inc()
        m.seconds.labels(route).observe(time.perf_counter() - started)
        return response

    app = web.Application(client_max_size=MAX_BATCH_BYTES + 1, middlewares=[measured])

    def granted(request: web.Request) -> Grant:
        grant = tokens.grant(request.headers.get("Authorization"))
        if grant is None:
            raise Problem(401, "unauthorized", "send Authorization: Bearer <token> with a token in CXJ_API_TOKENS")
        return grant

    async def post_touchpoints(request: web.Request) -> web.Response:
        grant = granted(request)
        body = await request.read()
        events = parse(body)
        for index, source in sources(events):
            if not grant.may_send(source):
                raise Problem(403, "forbidden", f"touchpoint {index}: token {grant.name!r} may not send its source")
        wait = grant.retry_after(len(events), time.monotonic())
        if wait:
            raise Problem(429, "rate_limited", f"token {grant.name!r} is over its rate", retry_after=wait)
        answer = validate(body, cfg, int(time.time() * 1000))
        await forwarder.send(body)
        m.touchpoints.labels("accepted").inc(answer.accepted)
        m.touchpoints.labels("rejected").inc(len(answer.rejected))
        return _json(answer, 202)

    async def get_customer(request: web.Request) -> web.Response:
        grant = granted(request)
        if profiles is None:
            raise Problem(503, "unavailable", "this replica serves no profiles", retry_after=BROKER_RETRY_SECONDS)
        if not grant.profiles:
            raise Problem(403, "forbidden", f"token {grant.name!r} may not read profiles")
        try:
            found = await profiles.get(request.match_info["id"])
        except ConfigError as exc:
            raise Problem(400, "bad_request", str(exc)) from None
        except SinkUnavailable:
            raise Problem(503, "unavailable", "ClickHouse does not answer; retry", retry_after=5) from None
        except SinkError as exc:
            raise Problem(500, "internal_error", f"ClickHouse refused the profile's query: {exc}") from None
        if found is None:
            raise Problem(404, "not_found", "no customer with this id")
        return _json(found, 200)

    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "broker": forwarder.state})

    async def openapi_json(_: web.Request) -> web.Response:
        return web.Response(body=openapi, content_type="application/json")

    async def metrics_text(_: web.Request) -> web.Response:
        return web.Response(body=generate_latest(m.registry), headers={"Content-Type": CONTENT_TYPE_LATEST})

    app.router.add_post("/v1/touchpoints", post_touchpoints)
    app.router.add_get("/v1/customers/{id}", get_customer)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/openapi.json", openapi_json)
    app.router.add_get("/metrics", metrics_text)

    async def lifecycle(_: web.Application) -> Any:
        await forwarder.start()
        yield
        await forwarder.stop()
        if profiles is not None:
            profiles.close()

    app.cleanup_ctx.append(lifecycle)
    return app


def runner(app: web.Application) -> web.AppRunner:
    """How the service is run (by `run`, the tests and the benchmark): access logged by route only."""
    return web.AppRunner(app, access_log_class=RouteAccessLogger)


def run(settings: Settings, *, host: str | None = None, port: int | None = None) -> None:
    """`cxj serve`: until interrupted."""
    settings.require_pii_secret()  # identifiers are hashed with it, and ingest validates with it
    if not settings.api_tokens:
        raise ConfigError("CXJ_API_TOKENS names no token: no feeder could send (`cxj stack up` writes one)")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    metrics = ApiMetrics.create(CollectorRegistry(), process=True)
    app = build_app(settings, forwarder=KafkaForwarder(settings), profiles=Profiles(settings), metrics=metrics)
    asyncio.run(_serve(runner(app), host or settings.api_host, port or settings.api_port))


async def _serve(app_runner: web.AppRunner, host: str, port: int) -> None:
    """Serve until SIGTERM or SIGINT, then finish the requests in flight and stop the producer."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await app_runner.setup()
    try:
        try:
            await web.TCPSite(app_runner, host, port).start()
        except OSError as exc:
            raise StackError(f"cxj serve cannot listen on {host}:{port} (CXJ_API_HOST, CXJ_API_PORT): {exc}") from None
        log.info("cxj serve on http://%s:%d (POST /v1/touchpoints, GET /v1/customers/{id})", host, port)
        await stop.wait()
    finally:
        await app_runner.cleanup()
