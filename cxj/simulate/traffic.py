"""The stream the simulator sends: valid touchpoints, broken payloads among them, Kafka messages, the producer."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from cxj.simulate.engine import DAY, HOUR, INVALID_REASONS, TOPIC, Event, Outgoing, Payload, SimulationConfig, _Engine
from cxj.simulate.stories import _BAD, _GOOD, _win_back
from schemas.errors import StackError
from schemas.settings import Settings
from schemas.touchpoint import MAX_BATCH_BYTES, MAX_BATCH_EVENTS, MAX_EVENT_BYTES


def _broken(reason: str, base: Event, n: int, rng: random.Random, config: SimulationConfig) -> bytes:
    """A payload that ingest rejects with exactly `reason`, built from a neighbouring valid event."""
    event = orjson.loads(orjson.dumps(base))  # a deep copy; PII kept, so dead letters show redaction
    event["event_id"] = f"{base['event_id']}-broken-{n}"
    variant = rng.random()
    if reason == "invalid_json":
        raw = orjson.dumps(event)
        if variant < 0.5:
            return raw[: len(raw) // 2]  # cut off mid-message
        return raw.replace(b'"', b"'") if variant < 0.8 else b"\xff\xfe" + raw
    if reason == "not_an_object":
        return orjson.dumps([event]) if variant < 0.6 else b'"touchpoint"' if variant < 0.8 else b"null"
    if reason == "missing_identity":
        placeholders = {"customer_id": "null", "anonymous_id": "", "device_id": "0"}
        event["identity"] = {} if variant < 0.5 else placeholders
    elif reason == "unknown_channel":
        event["channel"] = ("fax", "telegram", "WEB", "kiosk")[int(variant * 4)]
    elif reason == "invalid_field":
        bad: list[tuple[str, Any]] = [
            ("metrics", {"csat": 9}), ("metrics", {"nps": 11}), ("metrics", {"wait_seconds": -30}),
            ("metrics", {"amount": "199.00", "currency": "CNY"}), ("occurred_at", event["occurred_at"][:19]),
            ("event_type", "Order Placed"),
        ]  # fmt: skip
        name, value = bad[int(variant * len(bad))]
        event[name] = value
    elif reason == "future_timestamp":
        ahead = config.now_ms + HOUR + int(variant * 2 * DAY)
        event["occurred_at"] = datetime.fromtimestamp(ahead / 1000, UTC).isoformat(timespec="milliseconds")
    elif reason == "unsupported_schema_version":
        event["schema_version"] = 2 if variant < 0.7 else 0
    elif reason == "too_large":  # one touchpoint over 64 KiB (a feeder stuffing a transcript in)
        chunk = "lorem ipsum dolor sit amet " * 150
        event["attributes"] = {f"transcript_{i}": chunk for i in range(MAX_EVENT_BYTES // len(chunk) + 2)}
    return orjson.dumps(event)


# --- public API ----------------------------------------------------------------------------------


def generate(config: SimulationConfig) -> Iterator[Event]:
    """The valid v1 touchpoints (wire dicts), `config.valid_count` of them, lazily."""
    return _Engine(config, _GOOD, _BAD, _win_back).events()


def generate_raw(config: SimulationConfig) -> Iterator[Payload]:
    """`config.events` items: `generate(config)`'s dicts with broken payload bytes mixed in.

    The broken ones sit at random places and cycle through every Contract 1 rejection reason.
    """
    valid = generate(config)
    rng = random.Random(config.seed * 1_000_003 + 17)
    reasons = list(INVALID_REASONS)
    rng.shuffle(reasons)
    total, broken = config.events, config.invalid_count
    made = 0
    last: Event | None = None
    for i in range(total):
        # selection sampling: exactly `broken` slots, each equally likely
        if (total - i) * rng.random() < broken - made:
            base = last or {"event_id": "sim-seed", "schema_version": 1, "source": "web-frontend",
                            "occurred_at": config.now.isoformat(), "channel": "web",
                            "event_type": "page_view", "identity": {"customer_id": "C0000000"}}  # fmt: skip
            yield _broken(reasons[made % len(reasons)], base, made, rng, config)
            made += 1
        else:
            last = next(valid)
            yield last


def messages(items: Iterable[Payload], batch_size: int = 1) -> Iterator[Outgoing]:
    """Kafka messages `(key, value, touchpoints)` for the items, as `produce` sends them.

    With `batch_size` 1 each dict is one message keyed by its customer_id (no key without one);
    above 1, dicts go in `{"events": [...]}` envelopes of up to `batch_size` (and under 8 MiB).
    Raw bytes are always sent alone, exactly as given.
    """
    if not 1 <= batch_size <= MAX_BATCH_EVENTS:
        limit = MAX_BATCH_EVENTS
        raise ValueError(f"batch_size must be between 1 and {limit} (Contract 1), got {batch_size}")
    return _singles(items) if batch_size == 1 else _batches(items, batch_size)


def _singles(items: Iterable[Payload]) -> Iterator[Outgoing]:
    for item in items:
        if isinstance(item, bytes):
            yield None, item, 1
            continue
        cid = item.get("identity", {}).get("customer_id")
        yield (cid.encode() if cid else None), orjson.dumps(item), 1


def _batches(items: Iterable[Payload], batch_size: int) -> Iterator[Outgoing]:
    parts: list[bytes] = []
    size = 0
    limit = MAX_BATCH_BYTES - 64
    for item in items:
        if isinstance(item, bytes):
            yield None, item, 1
            continue
        raw = orjson.dumps(item)
        if parts and size + len(raw) + 1 > limit:
            yield None, b'{"events":[' + b",".join(parts) + b"]}", len(parts)
            parts, size = [], 0
        parts.append(raw)
        size += len(raw) + 1
        if len(parts) == batch_size:
            yield None, b'{"events":[' + b",".join(parts) + b"]}", len(parts)
            parts, size = [], 0
    if parts:
        yield None, b'{"events":[' + b",".join(parts) + b"]}", len(parts)


@dataclass(frozen=True)
class ProduceStats:
    """What `produce` sent, and how long it took (flush included)."""

    sent_events: int
    sent_messages: int
    seconds: float

    @property
    def events_per_second(self) -> float:
        return self.sent_events / self.seconds if self.seconds > 0 else 0.0


class Pacer:
    """Holds an average rate of events per second by sleeping when ahead (a token bucket)."""

    def __init__(
        self, rate: float | None, clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:  # fmt: skip
        if rate is not None and rate <= 0:
            raise ValueError(f"rate must be positive events per second, got {rate}")
        self.rate, self.clock, self.sleep = rate, clock, sleep
        self.restart()

    def restart(self) -> None:
        self.start = self.clock()
        self.sent = 0

    def took(self, events: int) -> None:
        """Count `events` as sent; sleep until the average rate allows the next one."""
        self.sent += events
        if self.rate is None:
            return
        ahead = self.start + self.sent / self.rate - self.clock()
        if ahead > 0.002:
            self.sleep(ahead)


@contextmanager
def _progress_bar(enabled: bool, total: int | None) -> Iterator[Callable[[int], None]]:
    if not enabled:
        yield lambda n: None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (TextColumn("[bold]touchpoints"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns) as bar:
        task = bar.add_task("send", total=total)
        yield lambda n: bar.advance(task, n)


def produce(
    settings: Settings, items: Iterable[Payload], *, rate: float | None = None, batch_size: int = 1,
    total: int | None = None, progress: bool = False, topic: str = TOPIC,
) -> ProduceStats:  # fmt: skip
    """Send items to `topic` (dicts as JSON, bytes as they are); Kafka errors become StackError."""
    stream = messages(items, batch_size)  # bad batch_size fails before connecting
    return produce_messages(settings, stream, rate=rate, total=total, progress=progress, topic=topic)


def produce_messages(
    settings: Settings, stream: Iterable[Outgoing], *, rate: float | None = None, total: int | None = None,
    progress: bool = False, topic: str = TOPIC,
) -> ProduceStats:  # fmt: skip
    """Send `messages(...)`'s messages to `topic` with kafka-python (acks=all)."""
    from kafka import KafkaProducer
    from kafka.errors import KafkaError

    pacer = Pacer(rate)
    failures: list[BaseException] = []
    where = settings.kafka_bootstrap
    try:
        producer = KafkaProducer(
            bootstrap_servers=where, client_id="cxj-simulate", acks="all", enable_idempotence=False,
            linger_ms=20, batch_size=512 * 1024, max_request_size=MAX_BATCH_BYTES + 1024 * 1024,
            bootstrap_timeout_ms=15_000, **settings.kafka_client_options(),
        )  # fmt: skip
    except KafkaError as exc:
        raise StackError(f"cannot reach the Kafka broker at {where}: {exc}") from exc
    started = time.monotonic()
    pacer.restart()  # connecting took a while: pace from the first send
    sent = count = 0
    try:
        with _progress_bar(progress, total) as advance:
            for key, value, n in stream:
                producer.send(topic, value=value, key=key).add_errback(failures.append)
                sent, count = sent + n, count + 1
                advance(n)
                pacer.took(n)
                if failures:
                    break
        producer.flush()
    except KafkaError as exc:
        raise StackError(f"sending to {topic} at {where} failed: {exc}") from exc
    finally:
        producer.close(timeout=10)
    if failures:
        raise StackError(f"Kafka at {where} refused messages for {topic}: {failures[0]}")
    return ProduceStats(sent, count, time.monotonic() - started)
