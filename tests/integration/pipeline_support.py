"""Helpers for integration tests: produce with kafka-python, wait until drained, read ClickHouse."""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

import orjson
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from cxj.demo import wait_drained
from deploy.local.host import free_ports
from schemas.settings import Settings
from sinks.clickhouse import ClickHouse

__all__ = ["WebhookReceiver", "consume_all", "free_ports", "produce", "query", "send_and_drain", "set_topic_configs"]


def produce(settings: Settings, payloads: Iterable[dict[str, Any] | bytes], *, key: bytes | None = None) -> int:
    producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap, linger_ms=5)
    n = 0
    try:
        for payload in payloads:
            value = payload if isinstance(payload, bytes) else orjson.dumps(payload)
            # Keyed like a feeder would (by its event id), so events spread over every partition.
            own = key if key is not None or isinstance(payload, bytes) else str(payload.get("event_id", "")).encode()
            producer.send("cx.touchpoints", value, key=own or None)
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


def string_columns(settings: Settings) -> list[tuple[str, str]]:
    """(table, column) of every String-holding column of every table (views and aggregate states left out)."""
    rows = query(
        settings,
        "SELECT c.table, c.name FROM system.columns AS c ANY INNER JOIN "
        "(SELECT name AS table, engine FROM system.tables WHERE database = %(db)s) AS t USING (table) "
        "WHERE c.database = %(db)s AND t.engine NOT LIKE '%%View' "
        "AND c.type LIKE '%%String%%' AND c.type NOT LIKE 'AggregateFunction%%'",
        {"db": settings.clickhouse.database},
    )
    return [(str(table), str(column)) for table, column in rows]


def set_topic_configs(settings: Settings, topics: tuple[str, ...], configs: dict[str, str]) -> None:
    """Set these configs on these topics (incrementally: their other configs stay)."""
    from kafka import KafkaAdminClient
    from kafka.admin import ConfigResource, ConfigResourceType

    admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap, **settings.kafka_client_options())
    try:
        admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, t, configs=configs) for t in topics])
    finally:
        admin.close()


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


class WebhookReceiver:
    """An Alertmanager webhook endpoint: collects every JSON body POSTed to it."""

    def __init__(self, port: int) -> None:
        import json
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        received = self.received = []  # type: list[dict[str, Any]]

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                received.append(json.loads(body))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *_: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def alerts(self) -> list[dict[str, Any]]:
        return [alert for body in self.received for alert in body.get("alerts", [])]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
