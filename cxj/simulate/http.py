"""Simulated traffic through `cxj serve` instead of Kafka: a feeder as HTTP clients write one.

Each message of `messages(...)` is one `POST /v1/touchpoints`, a few in flight at once; a 503 or 429 is
retried after its `Retry-After` (what the service promises is safe: nothing was stored, or a retried body
changes nothing downstream), any other refusal is counted, never retried.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final

from cxj.simulate.engine import Outgoing
from schemas.errors import StackError
from schemas.settings import Settings

__all__ = ["PostStats", "post"]

_RETRIED: Final = frozenset({429, 503})


@dataclass
class PostStats:
    """What `post` sent and what the service answered."""

    sent_events: int = 0
    sent_messages: int = 0
    accepted: int = 0
    rejected: int = 0
    retries: int = 0
    refused: Counter[int] = field(default_factory=Counter)  # status -> requests refused whole
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)

    @property
    def events_per_second(self) -> float:
        return self.sent_events / self.seconds if self.seconds > 0 else 0.0


def post(
    settings: Settings, stream: Iterable[Outgoing], *, concurrency: int = 8, max_retries: int = 20,
    token: str | None = None,
) -> PostStats:  # fmt: skip
    """POST every message to `CXJ_API_URL` with the local stack's token (`CXJ_API_TOKEN`) unless given one."""
    secret = token or (settings.api_token.get_secret_value() if settings.api_token else None)
    if not secret:
        raise StackError("no API token: set CXJ_API_TOKEN (`cxj stack up` writes one to .cxj/stack.env)")
    return asyncio.run(_post_all(settings.api_url, secret, stream, concurrency, max_retries))


async def _post_all(url: str, token: str, stream: Iterable[Outgoing], concurrency: int, retries: int) -> PostStats:
    import aiohttp

    stats = PostStats()
    todo: asyncio.Queue[Outgoing | None] = asyncio.Queue(maxsize=concurrency * 2)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    started = time.monotonic()
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(base_url=url, headers=headers, timeout=timeout) as session:

        async def one(body: bytes, n: int) -> None:
            for _ in range(retries + 1):
                sent = time.perf_counter()
                try:
                    async with session.post("/v1/touchpoints", data=body) as answer:
                        payload = await answer.json(content_type=None)
                        status, wait = answer.status, float(answer.headers.get("Retry-After", "1"))
                except (aiohttp.ClientError, TimeoutError) as exc:
                    raise StackError(f"cxj serve at {url} does not answer: {exc}") from exc
                if status == 202:
                    stats.latencies.append(time.perf_counter() - sent)
                    stats.accepted += payload["accepted"]
                    stats.rejected += len(payload["rejected"])
                    stats.sent_events, stats.sent_messages = stats.sent_events + n, stats.sent_messages + 1
                    return
                if status not in _RETRIED:
                    stats.refused[status] += 1
                    return
                stats.retries += 1
                await asyncio.sleep(min(wait, 10.0))
            raise StackError(f"cxj serve at {url} kept answering {status} after {retries} retries")

        errors: list[StackError] = []

        async def worker() -> None:
            while (item := await todo.get()) is not None:
                if not errors:  # after a failure, drain without sending, so the producer never blocks
                    try:
                        await one(item[1], item[2])
                    except StackError as exc:
                        errors.append(exc)

        workers = [asyncio.create_task(worker()) for _ in range(concurrency)]
        for message in stream:
            await todo.put(message)
            if errors:
                break
        for _ in workers:
            await todo.put(None)
        await asyncio.gather(*workers)
        if errors:
            raise errors[0]
    stats.seconds = time.monotonic() - started
    return stats
