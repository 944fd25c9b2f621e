"""Everything ingest accepts is storable: hypothesis over the whole wire format, rows inserted into real ClickHouse.

Issue 11: an `occurred_at` before 1970 passed validation and its insert then failed on every replay, stopping
the worker. Here any touchpoint the contract accepts, with its extremes (1970, the future tolerance, every
metric's range, every offset, unicode, PII in ids), goes through ingest and the stitch logic, and every row
it produces is inserted by the worker's writer into the real server: none may be refused.
"""

from __future__ import annotations

import itertools
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from schemas.touchpoint import CHANNELS, EVENT_TYPES_V1
from sinks.clickhouse import ClickHouse
from sinks.writer import Batch, ClickHouseWriter
from streams.domain.codec import Item
from streams.domain.dead_letters import dead_letter_row
from streams.domain.ingest import IngestConfig, Message, ingest
from streams.domain.outputs import alert_row
from streams.domain.processor import PartitionState
from streams.runtime.metrics import PipelineMetrics
from tests.factories import SECRET, policy

pytestmark = pytest.mark.integration

NOW = datetime.now(UTC).replace(microsecond=0)
NOW_MS = int(NOW.timestamp() * 1000)
CFG = IngestConfig(SECRET, "CN", frozenset({"null", "0"}))
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
ID_TEXT = st.text(st.characters(exclude_categories=("Cs", "Cc")), min_size=1, max_size=128)
_serial = itertools.count()


@st.composite
def instants(draw: Any) -> str:
    """RFC 3339 anywhere from year 1 to 9999, dense around 1970, now and 2106; any offset, 0-9 fraction digits.

    Ingest decides which it accepts (no DateTime holds a time before 1970 or after 2106-02-07, and the future
    tolerance is 5 minutes); whatever it accepts must then be storable.
    """
    kind = draw(st.sampled_from(["epoch", "now", "2106", "any"]))
    if kind == "any":
        base = draw(st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30))).replace(tzinfo=UTC)
    else:
        centre = {"epoch": EPOCH, "now": NOW, "2106": datetime(2106, 2, 7, 6, 28, 15, tzinfo=UTC)}[kind]
        base = centre + timedelta(seconds=draw(st.integers(-400, 400)))
    minutes = draw(st.integers(-14 * 60, 14 * 60))
    when = base.astimezone(timezone(timedelta(minutes=minutes)))
    digits = draw(st.integers(0, 9))
    fraction = "." + "".join(draw(st.lists(st.sampled_from("0123456789"), min_size=digits, max_size=digits)))
    text = when.strftime("%Y-%m-%dT%H:%M:%S").rjust(19, "0") + (fraction if digits else "")
    offset = when.strftime("%z")
    return text + (draw(st.sampled_from(["Z", "z", "+00:00"])) if minutes == 0 else f"{offset[:3]}:{offset[3:]}")


def ranged(low: float, high: float) -> st.SearchStrategy[float | int]:
    return st.integers(int(low), int(high)) | st.floats(low, high) | st.sampled_from([low, high])


METRICS = st.fixed_dictionaries(
    {},
    optional={
        "wait_seconds": ranged(0, 31_536_000),
        "transfers": st.integers(0, 1000),
        "handled_by": st.sampled_from(["human", "bot", "none"]),
        "resolved": st.booleans(),
        "csat": st.integers(1, 5),
        "nps": st.integers(0, 10),
        "ces": st.integers(1, 7),
        "rating": st.integers(1, 5),
        "sentiment": ranged(-1, 1),
        "amount": ranged(-1e12, 1e12),
        "currency": st.from_regex(r"\A[A-Z]{3}\Z"),
    },
)
PII_OR_ID = ID_TEXT | st.sampled_from(["bob.pii@example.com", "13912345678", "+86 139 1234 5678", "order 13912345678"])
IDENTITY = st.fixed_dictionaries(
    {},
    optional={
        "customer_id": PII_OR_ID,
        "anonymous_id": PII_OR_ID,
        "device_id": ID_TEXT,
        "phone": st.sampled_from(["13800138000", "+44 20 7946 0958", "(+86) 139 0000 1111"]),
        "email": st.sampled_from(["a@b.cn", "  Bob.PII@Example.COM "]),
        "wechat_openid": ID_TEXT,
    },
).filter(lambda d: bool(d))


@st.composite
def touchpoints(draw: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "event_id": draw(PII_OR_ID | st.uuids().map(str)),
        "schema_version": 1,
        "occurred_at": draw(instants()),
        "source": draw(ID_TEXT),
        "channel": draw(st.sampled_from(CHANNELS)),
        "event_type": draw(st.sampled_from(sorted(EVENT_TYPES_V1)) | st.from_regex(r"\A[a-z][a-z0-9_]{1,63}\Z")),
        "identity": draw(IDENTITY),
    }
    context = draw(
        st.fixed_dictionaries(
            {}, optional={f: PII_OR_ID for f in ("order_id", "case_id", "contact_id", "session_id", "agent_id")}
        )
    )
    if context:
        event["context"] = context
    metrics = draw(METRICS)
    if metrics:
        event["metrics"] = metrics
    attributes = draw(st.dictionaries(st.text(min_size=1, max_size=64), st.text(max_size=200), max_size=32))
    if attributes:
        event["attributes"] = attributes
    return event


@pytest.fixture(scope="module")
def writer(scratch: ClickHouse) -> tuple[ClickHouseWriter, CollectorRegistry]:
    # A scratch database: every example stitches with a fresh state, so the same key (a hashed phone in
    # customer_id) gets rows from unrelated states, which no pipeline writes (cxj check would flag them).
    registry = CollectorRegistry()
    return ClickHouseWriter(scratch, PipelineMetrics.create(registry)), registry


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                                                  HealthCheck.function_scoped_fixture])  # fmt: skip
@given(events=st.lists(touchpoints(), min_size=1, max_size=25), kafka_ms=st.sampled_from([0, -1, NOW_MS, 2**43]))
def test_every_accepted_touchpoint_is_storable_in_every_table(
    writer: tuple[ClickHouseWriter, CollectorRegistry], events: list[dict[str, Any]], kafka_ms: int
) -> None:
    sink, registry = writer
    run = uuid.uuid4().hex[:8]
    for n, event in enumerate(events):  # unique per example, so earlier examples are never duplicates
        event["event_id"] = f"{event['event_id']}-{run}-{n}"[-128:]
    batch = orjson.dumps({"events": events})
    result = ingest([Message(batch, "cx.touchpoints", 0, next(_serial), kafka_ms)], CFG, NOW_MS)
    state = PartitionState(0, policy())
    items = [Item("tp", rec.customer_id or "~" + rec.identifiers[0], rec) for rec in result.records]
    out = state.process(items, NOW_MS, NOW_MS)
    rows = out.rows
    rows.setdefault("churn_alerts", []).extend(alert_row(a) for a in out.alerts)
    rows["dead_letters"] = [dead_letter_row(d) for d in result.rejected]
    rows = {table: r for table, r in rows.items() if r}
    written = sink.write(Batch(rows, sum(len(r) for r in rows.values())))
    refused = registry.get_sample_value("cx_sink_rejected_rows_total", {"table": "touchpoints"})
    assert refused == 0
    for table in rows:
        assert (registry.get_sample_value("cx_sink_rejected_rows_total", {"table": table}) or 0) == 0, table
    assert written.get("touchpoints", 0) == len(result.records) - out.duplicates
    assert written.get("dead_letters", 0) == len(result.rejected)
    assert {d.reason.value for d in result.rejected} <= {"invalid_field", "missing_identity", "future_timestamp"}
