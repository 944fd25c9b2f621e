"""`cxj dlq replay`: re-feed dead letters to cx.touchpoints after a fix, at most once per dead letter.

The DLQ topic keeps each rejected payload as it arrived (batch elements re-encoded alone), with the reason in
the `cx.dlq.reason` header. Replay reads it from the offsets committed by the `cx-dlq-replay` group up to
the end offsets seen at the start, re-produces the payloads whose reason is selected, flushes, and only then
commits: a second run re-sends nothing, and a crash in between re-sends what the pipeline then deduplicates
by event_id. What fails again lands in the DLQ again, after the committed offsets, for the next fix.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field

from schemas.errors import StackError
from schemas.records import RejectReason
from schemas.settings import Settings
from streams.runtime.topics import DLQ, TOUCHPOINTS

__all__ = ["REPLAY_GROUP", "ReplayStats", "replay"]

REPLAY_GROUP = "cx-dlq-replay"
REPLAY_HEADER = "cx.dlq.replayed-from"


@dataclass
class ReplayStats:
    read: int = 0
    replayed: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    by_reason: Counter[str] = field(default_factory=Counter)
    incomplete: bool = False  # the broker went silent before the end offsets: run again to continue


def replay(
    settings: Settings,
    *,
    reasons: set[str] | None = None,
    from_beginning: bool = False,
    dry_run: bool = False,
    idle_timeout: float = 30.0,
) -> ReplayStats:
    """Re-produce dead letters (optionally only some reasons); commit progress only after the sends landed."""
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition
    from kafka.errors import KafkaError
    from kafka.structs import OffsetAndMetadata

    known = {r.value for r in RejectReason}
    if reasons and not reasons <= known:
        raise StackError(f"unknown reason(s) {sorted(reasons - known)}; known: {', '.join(sorted(known))}")
    stats = ReplayStats()
    options = settings.kafka_client_options()
    try:
        consumer = KafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, group_id=REPLAY_GROUP,
                                 enable_auto_commit=False, consumer_timeout_ms=2000, **options)  # fmt: skip
        producer = None if dry_run else KafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all",
                                                      linger_ms=5, **options)  # fmt: skip
    except KafkaError as exc:
        raise StackError(f"Kafka at {settings.kafka_bootstrap} unreachable: {exc}") from exc
    try:
        tps = [TopicPartition(DLQ, p) for p in sorted(consumer.partitions_for_topic(DLQ) or ())]
        if not tps:
            return stats
        consumer.assign(tps)
        ends = consumer.end_offsets(tps)
        for tp in tps:
            committed = None if from_beginning else consumer.committed(tp)
            consumer.seek(tp, committed or 0)
        remaining = {tp for tp in tps if consumer.position(tp) < ends[tp]}
        idle_since = time.monotonic()
        while remaining:
            batch = consumer.poll(timeout_ms=1000, max_records=5000)
            if not batch:
                # A slow broker can answer a poll empty before the end: only a long silence ends the read.
                if time.monotonic() - idle_since > idle_timeout:
                    stats.incomplete = True
                    break
                continue
            idle_since = time.monotonic()
            for tp, messages in batch.items():
                for message in messages:
                    if message.offset >= ends[tp]:
                        remaining.discard(tp)
                        break
                    stats.read += 1
                    headers = dict(message.headers or [])
                    reason = headers.get("cx.dlq.reason", b"").decode() or "unknown"
                    if reasons and reason not in reasons:
                        stats.skipped[reason] += 1
                        continue
                    stats.by_reason[reason] += 1
                    stats.replayed += 1
                    if producer is not None:
                        origin = f"{DLQ}/{tp.partition}/{message.offset}".encode()
                        producer.send(TOUCHPOINTS, message.value, key=message.key, headers=[(REPLAY_HEADER, origin)])
                if consumer.position(tp) >= ends[tp]:
                    remaining.discard(tp)
        if producer is not None:
            producer.flush()
            # Up to what was read: the end offsets seen at the start, or less if a poll came back empty.
            done = {tp: min(consumer.position(tp), ends[tp]) for tp in tps}
            consumer.commit({tp: OffsetAndMetadata(offset, "", -1) for tp, offset in done.items()})
        return stats
    except KafkaError as exc:
        raise StackError(f"DLQ replay failed, nothing committed: {exc}") from exc
    finally:
        consumer.close()
        if producer is not None:
            producer.close()
