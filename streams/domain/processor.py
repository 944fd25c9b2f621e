"""Stage 2, pure: apply a partition's items to customer state and collect every output.

The native core does the work (`cx_core.Stage`, core/src/stage.rs), one call per batch: stitching,
experiences, journeys, risk and alerts (docs/contract.md, Contract 2), and the rows of every table.
The customers' states stay serialized in the core (the changelog's bytes; `data` is a read-only view);
a touched state is decoded once per batch and written back once. This module configures the core and
turns what it returns into an `Output`; the pydantic `ChurnAlert` is made here.
"""

from __future__ import annotations

import hashlib
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, Final

import cx_core

from schemas.records import RISK_LEVELS, ChurnAlert, RecommendedAction, TouchpointRecord
from schemas.rows import (
    TABLE_OF_ROW,
    AlertOutcomeRow,
    CustomerRow,
    ErasureRow,
    IdentityOverrideRow,
    JourneyRow,
    SignalRow,
    TouchpointRow,
)
from streams.domain.codec import Item
from streams.domain.customer import Policy
from streams.domain.outputs import Output
from streams.domain.playbook import recommend

__all__ = ["ALERT_NAMESPACE", "PartitionState", "alert_id"]

ALERT_NAMESPACE: Final = uuid.UUID("6f1c2d4e-8a7b-4c3d-9e2f-1a2b3c4d5e6f")
# What the core builds rows and items of, and the tables of those rows, in the order it expects.
_CLASSES: Final = (TouchpointRecord, Item, TouchpointRow, SignalRow, CustomerRow, JourneyRow, IdentityOverrideRow,
                   ErasureRow, AlertOutcomeRow)  # fmt: skip
_TABLES: Final = tuple(TABLE_OF_ROW[row] for row in _CLASSES[2:])
_NAMESPACE: Final = ALERT_NAMESPACE.bytes


def alert_id(key: str, instant: int) -> str:
    """`str(uuid.uuid5(ALERT_NAMESPACE, f"{key}|{instant}"))`, written without the UUID object, which cost
    two thirds of making an alert (tests/unit/streams/test_processor.py compares the two)."""
    digest = bytearray(hashlib.sha1(_NAMESPACE + f"{key}|{instant}".encode(), usedforsecurity=False).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80  # RFC 4122 variant
    x = digest.hex()
    return f"{x[:8]}-{x[8:12]}-{x[12:16]}-{x[16:20]}-{x[20:]}"


def _alert_maker(policy: Policy) -> Callable[..., ChurnAlert]:
    """What the core calls for each crossing it alerts: the `ChurnAlert`, with the playbook's actions."""
    rules, playbook = policy.classifier.rules, policy.playbook

    @lru_cache(maxsize=4096)  # a function of the signals and dimensions, and alerts repeat few of them
    def actions(signals: tuple[str, ...], dimensions: tuple[str, ...]) -> tuple[RecommendedAction, ...]:
        return tuple(recommend(playbook, rules, signals, dimensions))  # frozen models: safe to share

    def make(
        key: str,
        instant: int,
        before: int,
        keys: list[str],
        signals: list[str],
        dimensions: list[str],
        lifetime: float,
        now_ms: int,
    ) -> ChurnAlert:
        return ChurnAlert(
            alert_id=alert_id(key, instant),
            customer_key=key,
            level="high",
            previous_level=RISK_LEVELS[before],
            dissatisfied_90d=len(keys),
            experience_keys=keys,
            signals=signals,
            dimensions=dimensions,
            triggered_at=datetime.fromtimestamp(instant / 1000, UTC),
            lifetime_value=lifetime,
            emitted_at=datetime.fromtimestamp(now_ms / 1000, UTC),
            actions=list(actions(tuple(signals), tuple(dimensions))),
        )

    return make


def native_policy(policy: Policy) -> tuple[Any, ...]:
    """The rule parameters as the core reads them."""
    j = policy.journeys
    rules = policy.classifier.rules.model_dump_json().encode()
    hold = policy.anonymous_hold
    return (rules, dict(j.timeouts), j.retention, policy.window, policy.lateness, policy.half_life, hold,
            policy.recovery)  # fmt: skip


class StateView(Mapping[str, bytes]):
    """Read-only view of a partition's serialized entries (copies of the changelog values the core holds)."""

    def __init__(self, stage: cx_core.Stage) -> None:
        self._stage = stage

    def __getitem__(self, key: str) -> bytes:
        value = self._stage.get(key)
        if value is None:
            raise KeyError(key)
        return value

    def __iter__(self) -> Iterator[str]:
        return iter(self._stage.keys())

    def __len__(self) -> int:
        return len(self._stage)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and key in self._stage


class PartitionState:
    """The customers of one stitch partition: serialized entries plus the core's indexes."""

    def __init__(self, partition: int, policy: Policy, forward_ttl_ms: int = 3_600_000) -> None:
        self.partition = partition
        self.policy = policy
        self.forward_ttl_ms = forward_ttl_ms
        self._stage = cx_core.Stage(partition, native_policy(policy), forward_ttl_ms, _CLASSES, _TABLES,
                                  _alert_maker(policy))  # fmt: skip
        self.data: Mapping[str, bytes] = StateView(self._stage)

    @property
    def max_event_ms(self) -> int:
        """The latest event time this partition has seen."""
        return int(self._stage.max_event_ms)

    @property
    def held(self) -> int:
        """Anonymous keys whose alerts wait for identity (CXJ_ANONYMOUS_ALERT_HOLD_SECONDS)."""
        return int(self._stage.held)

    def restore(self, entries: Iterable[tuple[str, bytes | None]]) -> None:
        """Rebuild from the changelog (last value per key wins) and re-index due journeys and holds."""
        self._stage.restore(entries)

    def stats(self) -> tuple[int, int]:
        """(keys, serialized bytes) held."""
        keys, size = self._stage.stats()
        return int(keys), int(size)

    def process(self, items: Iterable[Item], now_ms: int, watermark: int) -> Output:
        """Apply items in partition order; every state touched is written back once."""
        batch = items if isinstance(items, list) else list(items)
        return _output(self._stage.process(batch, now_ms, watermark))

    def process_encoded(self, messages: list[bytes], now_ms: int, watermark: int) -> Output:
        """`process` of the items of stitch messages as the topic carries them (`codec.encode_items`), decoded
        by the core: the worker's path, on which records never become Python objects."""
        return _output(self._stage.process_encoded(messages, now_ms, watermark))

    def expire(self, now_ms: int, watermark: int) -> Output:
        """Close journeys whose idle timeout passed, alert held episodes now due, drop old forwards."""
        return _output(self._stage.expire(now_ms, watermark))


def _output(parts: tuple[Any, ...]) -> Output:
    rows, forward, alerts, changed, duplicates, signals, opened, closed, seconds, merges, erased, received = parts[:12]
    decided = parts[12]
    return Output(
        rows=rows,
        forward=forward,
        alerts=alerts,
        changed=changed,
        duplicates=duplicates,
        signals=Counter(dict(signals)),
        journeys_opened=Counter(dict(opened)),
        journeys_closed=Counter(closed),
        journey_seconds=seconds,
        merges=merges,
        erased=erased,
        received_ms=received,
        outcomes_decided=Counter(dict(decided)),
    )
