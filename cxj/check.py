"""`cxj check`: the pipeline's invariants, each a query over ClickHouse, read-only (the BI user).

Each check prints how many things break it and one example key; the command exits 1 when any fails.
The queries live in sinks/queries/checks/; the one check ClickHouse cannot answer alone (dead letters on
the DLQ topic missing from `cx.dead_letters`) reads the topic, when the broker answers.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.console import Console
from rich.table import Table

from schemas.records import DLQ_ORIGIN_HEADER
from schemas.settings import Settings
from sinks.clickhouse import ClickHouse
from sinks.queries import checks
from streams.runtime.topics import DLQ

__all__ = ["CheckResult", "dlq_check", "render", "run_all", "run_checks"]


@dataclass(frozen=True, slots=True)
class CheckResult:
    name: str
    description: str
    failures: int
    example: str

    @property
    def ok(self) -> bool:
        return self.failures == 0


def run_checks(ch: ClickHouse, settings: Settings) -> list[CheckResult]:
    """Every ClickHouse check, in order."""
    params = {"window": settings.window_days * 86_400, "hold": settings.anonymous_alert_hold_seconds}
    results = []
    for name in checks.names():
        [(failures, example)] = ch.query(checks.load(name, ch.database), params)
        results.append(CheckResult(name, checks.DESCRIPTIONS[name], int(failures), str(example or "")))
    return results


def dlq_check(ch: ClickHouse, settings: Settings, *, limit: int = 200_000, timeout: float = 10.0) -> CheckResult:
    """Dead letters on the DLQ topic (its origin header) that `cx.dead_letters` lacks; at most `limit` read.

    `cxj forget` deletes a customer's dead letters from the table while the topic keeps them until its
    retention, so only messages produced after the last erasure are compared.
    """
    from kafka import KafkaConsumer, TopicPartition
    from kafka.errors import KafkaError

    name = "dead_letters_on_topic_missing"
    description = "dead letters on the DLQ topic (after the last erasure) missing from the table"
    try:
        consumer = KafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, enable_auto_commit=False,
                                 group_id=None, consumer_timeout_ms=int(timeout * 1000),
                                 **settings.kafka_client_options())  # fmt: skip
    except KafkaError as exc:
        return CheckResult(name, f"{description} (not checked: Kafka unreachable: {exc})", 0, "")
    try:
        partitions = [TopicPartition(DLQ, p) for p in sorted(consumer.partitions_for_topic(DLQ) or ())]
        consumer.assign(partitions)
        ends = consumer.end_offsets(partitions)
        for tp in partitions:
            consumer.seek(tp, max(0, ends[tp] - limit // max(1, len(partitions))))
        [(erased_at,)] = ch.query("SELECT toUInt32(max(done_at)) FROM {db}.erasures")
        after_ms = (int(erased_at) + 1) * 1000 if erased_at else 0
        origins: set[tuple[str, int, int, int]] = set()
        remaining = {tp for tp in partitions if consumer.position(tp) < ends[tp]}
        for message in consumer if remaining else ():
            tp = TopicPartition(message.topic, message.partition)
            header = dict(message.headers or []).get(DLQ_ORIGIN_HEADER)
            if header and message.timestamp > after_ms:
                topic, partition, offset, index = header.decode().rsplit("/", 3)
                origins.add((topic, int(partition), int(offset), int(index)))
            if message.offset + 1 >= ends[tp]:
                remaining.discard(tp)
            if not remaining:
                break
    finally:
        consumer.close()
    if not origins:
        return CheckResult(name, description, 0, "")
    topics = sorted({o[0] for o in origins})
    stored = {
        (topic, int(partition), int(offset), int(idx))
        for topic, partition, offset, idx in ch.query(
            "SELECT DISTINCT topic, partition, offset, idx FROM {db}.dead_letters WHERE topic IN %(topics)s",
            {"topics": tuple(topics)},
        )
    }
    missing = sorted(origins - stored)
    example = "/".join(map(str, missing[0])) if missing else ""
    return CheckResult(name, description, len(missing), example)


def run_all(ch: ClickHouse, settings: Settings, *, dlq: bool = True) -> list[CheckResult]:
    """What `cxj check` runs: every ClickHouse check, then (unless `dlq` is off) the DLQ comparison."""
    results = run_checks(ch, settings)
    if dlq:
        results.append(dlq_check(ch, settings))
    return results


def render(results: list[CheckResult], console: Console) -> None:
    table = Table(title="cxj check: the pipeline's invariants", title_justify="left")
    table.add_column("check", no_wrap=True)
    table.add_column("failures", justify="right", no_wrap=True)
    table.add_column("example", overflow="fold", max_width=24)
    table.add_column("what it means")
    for r in results:
        mark = "[green]ok[/]" if r.ok else f"[bold red]{r.failures:,}[/]"
        table.add_row(r.name, mark, r.example, r.description)
    console.print(table)
    failed = [r.name for r in results if not r.ok]
    if failed:
        console.print(f"[bold red]{len(failed)} check(s) failed:[/] {', '.join(failed)}")
    else:
        console.print("[green]every check passed[/]")
