"""`cxj bench state`: memory held per customer key at a million customers, without the stack.

The pipeline benchmark's "1,000,000 customers" run sends a million simulated events, which touch
fewer keys than that. This one drives exactly N customer keys (an order and an unresolved call
each) through the same ingest and stitch code a worker runs, in this process, and reports the
serialized state and the process memory per key.
"""

from __future__ import annotations

import gc
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from pydantic import SecretStr

from cxj.bench.pipeline import status_mb
from schemas.errors import StateError
from schemas.settings import Settings

__all__ = ["StateBenchConfig", "run_state_bench"]

_PARTITIONS = 8
_BATCH = 250  # customers per message (two touchpoints each)


@dataclass(frozen=True)
class StateBenchConfig:
    customers: int = 1_000_000


def _events(first: int, last: int, now: datetime) -> list[dict[str, Any]]:
    events = []
    for n in range(first, last):
        at = (now - timedelta(days=n % 50, minutes=n % 1440)).isoformat(timespec="milliseconds")
        identity = {"customer_id": f"C{n:07d}", "phone": f"+86 138{n % 10**8:08d}"}
        events += [
            {"schema_version": 1, "event_id": f"state-{n}-order", "source": "web-shop", "occurred_at": at,
             "channel": "web", "event_type": "order_placed", "identity": identity,
             "context": {"order_id": f"o-{n}"}, "metrics": {"amount": 99.5, "currency": "CNY"}},
            {"schema_version": 1, "event_id": f"state-{n}-call", "source": "call-centre", "occurred_at": at,
             "channel": "phone", "event_type": "contact_ended", "identity": identity,
             "context": {"case_id": f"k-{n}", "contact_id": f"c-{n}"},
             "metrics": {"wait_seconds": 900, "resolved": False, "transfers": 3}},
        ]  # fmt: skip
    return events


def _unlinked(identifier: str) -> str | None:
    """The identity replica of a worker that has seen no links (every customer has its own id here)."""
    return None


def run_state_bench(settings: Settings, cfg: StateBenchConfig) -> dict[str, Any]:
    from streams.domain.ingest import Message, ingest_routed
    from streams.domain.processor import PartitionState
    from streams.runtime.policies import ingest_config_from, policy_from
    from streams.runtime.worker import tune_gc

    tune_gc()  # as in a worker
    if settings.pii_secret is None:  # no stack needed: a throwaway key, the hashes are never kept
        settings = settings.model_copy(update={"pii_secret": SecretStr(secrets.token_hex(32))})
    policy, ingest_cfg = policy_from(settings), ingest_config_from(settings)
    states = {p: PartitionState(p, policy) for p in range(_PARTITIONS)}
    now = datetime.now(UTC)
    now_ms = int(now.timestamp() * 1000)
    before, started = status_mb("VmRSS"), time.monotonic()
    accepted = 0
    for first in range(0, cfg.customers, _BATCH):
        raw = orjson.dumps({"events": _events(first, min(first + _BATCH, cfg.customers), now)})
        result = ingest_routed([Message(raw, "bench", 0, first, now_ms)], ingest_cfg, now_ms, _unlinked, _PARTITIONS)
        if result.rejected:  # a figure over fewer events than it says would mean nothing
            d = result.rejected[0]
            raise StateError(f"ingest rejected {len(result.rejected)} bench events, e.g. {d.reason.value}: {d.detail}")
        for p, payload, items in result.stitch:
            accepted += items
            states[p].process_encoded([payload], now_ms, now_ms - 60_000)
    gc.collect()
    keys = sum(s.stats()[0] for s in states.values())
    serialized = sum(s.stats()[1] for s in states.values())
    after = status_mb("VmRSS")
    return {
        "customers": cfg.customers,
        "keys": keys,
        "touchpoints": accepted,
        "seconds": round(time.monotonic() - started, 1),
        "serialized_bytes_per_customer": round(serialized / keys, 1) if keys else 0.0,
        "process_bytes_per_customer": round((after - before) * 1024 * 1024 / keys, 1) if keys else 0.0,
        "rss_mb_before": round(before, 1),
        "rss_mb_after": round(after, 1),
    }
