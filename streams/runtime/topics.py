"""Kafka topics of the pipeline: names, partition counts and configs, and their creation."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Final

from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient, NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

from schemas.errors import ConfigError, StackError
from schemas.settings import Settings
from schemas.touchpoint import MAX_BATCH_BYTES
from streams.domain.customer import DAY_MS

__all__ = [
    "ALERTS",
    "CHANGELOG",
    "CLAIMS",
    "DLQ",
    "LINKS",
    "MAX_REQUEST_BYTES",
    "STITCH",
    "TOUCHPOINTS",
    "TopicSpec",
    "create_topics",
    "topic_specs",
]

log = logging.getLogger(__name__)

# Contract names (fixed) and internal ones (ours to change with a migration of the data).
TOUCHPOINTS: Final = "cx.touchpoints"
DLQ: Final = "cx.touchpoints.dlq"
ALERTS: Final = "cx.churn.alerts"
LINKS: Final = "cx.identity.links"
STITCH: Final = "cx.internal.stitch"
CLAIMS: Final = "cx.internal.claims"
CHANGELOG: Final = "cx.internal.state"


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    config: dict[str, str] = field(default_factory=dict)


# What the worker's producer may send in one request (streams/runtime/producer.py). Kafka refuses a record batch
# over the topic's max.message.bytes (1 MiB by default) with MessageSizeTooLarge, which stops the worker: a flush
# after a ClickHouse outage re-routes and checkpoints many items at once, so every topic it writes takes as much.
MAX_REQUEST_BYTES: Final = 16 * 1024 * 1024
_WORKER_WRITES: Final = str(MAX_REQUEST_BYTES + 65536)


def topic_specs(settings: Settings) -> list[TopicSpec]:
    """Every topic with an explicit partition count and configs: auto-created ones would get the wrong ones."""
    n = settings.topic_partitions
    week, month = str(7 * DAY_MS), str(30 * DAY_MS)
    big = {"max.message.bytes": _WORKER_WRITES}
    return [
        # A feeder's batch is at most MAX_BATCH_BYTES (Contract 1: 8 MiB).
        TopicSpec(TOUCHPOINTS, n, {"retention.ms": week, "max.message.bytes": str(MAX_BATCH_BYTES + 65536)}),
        TopicSpec(DLQ, n, {"retention.ms": month, **big}),
        TopicSpec(ALERTS, n, {"retention.ms": month, **big}),
        # Compacted: the latest key of every identifier survives; rebuilt by every worker.
        TopicSpec(LINKS, n, {"cleanup.policy": "compact", **big}),
        TopicSpec(STITCH, n, {"retention.ms": week, **big}),
        # One partition: one arbiter decides every link in order, so two customers never share one.
        TopicSpec(CLAIMS, 1, {"retention.ms": week, **big}),
        # Co-partitioned with STITCH: partition p holds the state of stitch partition p.
        TopicSpec(CHANGELOG, n, {"cleanup.policy": "compact", **big}),
    ]


def create_topics(settings: Settings, *, timeout: float = 30.0) -> list[str]:
    """Create missing topics; refuse to run against a topic with a different partition count."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            admin = KafkaAdminClient(
                bootstrap_servers=settings.kafka_bootstrap,
                client_id="cxj-init",
                request_timeout_ms=10_000,
                **settings.kafka_client_options(),
            )
            break
        except KafkaError as exc:
            if time.monotonic() > deadline:
                raise StackError(f"Kafka at {settings.kafka_bootstrap} did not answer: {exc}") from exc
            time.sleep(0.5)
    try:
        existing = set(admin.list_topics())
        specs = topic_specs(settings)
        missing = [
            NewTopic(s.name, s.partitions, settings.topic_replication, topic_configs=s.config)
            for s in specs
            if s.name not in existing
        ]
        if missing:
            try:
                admin.create_topics(missing, timeout_ms=int(timeout * 1000))
            except TopicAlreadyExistsError:
                pass  # another `cxj init` raced us: fine, checked below
        for spec in specs:
            if spec.name in existing:
                found = len(admin.describe_topics([spec.name])[0]["partitions"])
                if found != spec.partitions:
                    raise ConfigError(
                        f"topic {spec.name} has {found} partitions, the configuration says "
                        f"{spec.partitions} (CXJ_TOPIC_PARTITIONS); repartitioning needs a migration"
                    )
        _reconcile_configs(admin, [s for s in specs if s.name in existing])
        return [t.name for t in missing]
    finally:
        admin.close()


def _reconcile_configs(admin: KafkaAdminClient, specs: list[TopicSpec]) -> None:
    """Give topics created by an earlier release the configs this one declares (only those keys, incrementally)."""
    if not specs:
        return
    resources = [ConfigResource(ConfigResourceType.TOPIC, s.name) for s in specs]
    described = admin.describe_configs(resources).get("topic", {})  # {"topic": {name: {key: {"value": …}}}}
    current = {name: {k: entry.get("value") for k, entry in entries.items()} for name, entries in described.items()}
    changes = [
        ConfigResource(ConfigResourceType.TOPIC, s.name, configs=wrong)
        for s in specs
        if (wrong := {k: v for k, v in s.config.items() if current.get(s.name, {}).get(k) != v})
    ]
    if changes:
        log.info("updating topic configs: %s", {c.name: c.configs for c in changes})
        admin.alter_configs(changes)


def consumer_lag(settings: Settings, topics: tuple[str, ...] = (TOUCHPOINTS, STITCH, CLAIMS)) -> dict[str, int]:
    """Messages not yet committed by the worker group, per topic (0 everywhere = drained).

    The worker commits an offset only after everything derived from it is in ClickHouse, so
    zero lag means every row is written.
    """
    from kafka import KafkaConsumer, TopicPartition

    # A consumer with the group id reads the group's commits without joining the group.
    consumer = KafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap,
        client_id="cxj-lag",
        group_id=settings.app_id,
        enable_auto_commit=False,
        **settings.kafka_client_options(),
    )
    try:
        lag: dict[str, int] = {}
        for topic in topics:
            tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
            ends = consumer.end_offsets(tps) if tps else {}
            lag[topic] = sum(max(0, ends[tp] - (consumer.committed(tp) or 0)) for tp in tps)
        return lag
    finally:
        consumer.close()
