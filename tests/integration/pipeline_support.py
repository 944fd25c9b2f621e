"""Helpers for integration tests: produce with kafka-python, wait until drained, read ClickHouse."""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

import orjson
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from cxj.demo import wait_drained
from cxj.settings import Settings
from sinks.clickhouse import ClickHouse

__all__ = ["consume_all", "produce", "query", "send_and_drain"]


def produce(settings: Settings, payloads: Iterable[dict[str, Any] | bytes], *, key: bytes | None = None) -> int:
    producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap, linger_ms=5)
    n = 0
    try:
        for payload in payloads:
            value = payload if isinstance(payload, bytes) else orjson.dumps(payload)
            producer.send("cx.touchpoints", value, key=key)
            n += 1
        producer.flush()
    finally:
        producer.close()
    return n


def send_and_drain(settings: Settings, payloads: Iterable[dict[str, Any] | bytes], timeout: float = 120) -> None:
    produce(settings, payloads)
    # Let the worker see the new offsets before asking whether it committed them.
    time.sleep(0.5)
    wait_drained(settings, timeout)


def query(settings: Settings, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
    return ClickHouse(settings.clickhouse).query(sql, params)


def consume_all(settings: Settings, topic: str, timeout_ms: int = 3000) -> list[Any]:
    """Every message of a topic, read without a group (assign + seek to beginning)."""
    consumer = KafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, consumer_timeout_ms=timeout_ms)
    try:
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        return list(consumer)
    finally:
        consumer.close()
