"""One aiokafka producer for every topic the worker writes, with batched sends."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from typing import Any, Protocol

from aiokafka import AIOKafkaProducer

from schemas.settings import Settings
from streams.runtime.topics import MAX_REQUEST_BYTES

__all__ = ["BatchProducer", "Sender"]

Headers = Sequence[tuple[str, bytes]]


class Sender(Protocol):
    """What agents need from a producer; tests hand in an in-memory one."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def send(
        self,
        topic: str,
        value: bytes | None,
        *,
        key: bytes | None = None,
        partition: int | None = None,
        headers: Headers | None = None,
    ) -> asyncio.Future[Any]: ...

    async def send_many(
        self, topic: str, partition: int, records: Iterable[tuple[bytes | None, bytes | None]]
    ) -> list[asyncio.Future[Any]]: ...


class BatchProducer:
    """aiokafka producer: `send` for single messages, `send_many` builds record batches directly."""

    def __init__(self, settings: Settings, *, client_id: str = "cx-journeys") -> None:
        self.settings = settings
        self.client_id = client_id
        self._client: AIOKafkaProducer | None = None

    @property
    def _producer(self) -> AIOKafkaProducer:
        if self._client is None:
            raise RuntimeError("BatchProducer used before start()")
        return self._client

    async def start(self) -> None:
        # aiokafka binds to the running loop: build it here, not in __init__.
        self._client = AIOKafkaProducer(
            bootstrap_servers=self.settings.kafka_bootstrap,
            client_id=self.client_id,
            acks="all",
            linger_ms=5,
            max_batch_size=1024 * 1024,
            max_request_size=MAX_REQUEST_BYTES,  # every topic it writes takes this much
            request_timeout_ms=30_000,
            **self.settings.aiokafka_options(),
        )
        await self._client.start()

    async def stop(self) -> None:
        await self._producer.stop()

    async def send(
        self,
        topic: str,
        value: bytes | None,
        *,
        key: bytes | None = None,
        partition: int | None = None,
        headers: Headers | None = None,
    ) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = await self._producer.send(
            topic, value, key=key, partition=partition, headers=list(headers) if headers else None
        )
        return future

    async def send_many(
        self, topic: str, partition: int, records: Iterable[tuple[bytes | None, bytes | None]]
    ) -> list[asyncio.Future[Any]]:
        futures: list[asyncio.Future[Any]] = []
        batch = self._producer.create_batch()
        for key, value in records:
            if batch.append(key=key, value=value, timestamp=None) is None:
                futures.append(await self._producer.send_batch(batch, topic, partition=partition))
                batch = self._producer.create_batch()
                if batch.append(key=key, value=value, timestamp=None) is None:
                    raise ValueError(f"a record for {topic} is larger than the batch limit")
        if batch.record_count():
            futures.append(await self._producer.send_batch(batch, topic, partition=partition))
        return futures

    async def flush(self) -> None:
        await self._producer.flush()
