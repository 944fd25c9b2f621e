"""The pipeline end to end on the real local stack: rows, dead letters, one alert, metrics."""

from __future__ import annotations

import subprocess
import time
import urllib.request
import uuid
from datetime import UTC, datetime, timedelta

import orjson
import pytest

from schemas.settings import Settings
from tests.factories import touchpoint
from tests.integration.pipeline_support import consume_all, query, send_and_drain

pytestmark = pytest.mark.integration


def _uid() -> str:
    return uuid.uuid4().hex[:10]


def test_touchpoints_single_and_batched_land_in_clickhouse(pipeline: Settings) -> None:
    run = _uid()
    now = datetime.now(UTC)
    singles = [touchpoint("page_view", identity={"customer_id": f"C-{run}"}, at=now - timedelta(minutes=i))
               for i in range(5)]  # fmt: skip
    batch = {"events": [touchpoint("order_placed", identity={"customer_id": f"C-{run}"}, at=now,
                                   context={"order_id": f"O-{run}-{i}"}, metrics={"amount": 10.0, "currency": "CNY"})
                        for i in range(300)]}  # fmt: skip
    send_and_drain(pipeline, [*singles, batch])

    rows = query(pipeline, "SELECT count(), uniqExact(event_id) FROM {db}.touchpoints FINAL WHERE customer_key = %(k)s",
                 {"k": f"C-{run}"})  # fmt: skip
    assert rows == [(305, 305)]
    customer = query(pipeline, "SELECT lifetime_value, churn_risk FROM {db}.customer_experience FINAL "
                     "WHERE customer_key = %(k)s", {"k": f"C-{run}"})  # fmt: skip
    assert customer == [(3000.0, "none")]
    journeys = query(pipeline, "SELECT journey_type, count() FROM {db}.journeys FINAL WHERE customer_key = %(k)s "
                     "AND merged_into = '' GROUP BY journey_type ORDER BY journey_type", {"k": f"C-{run}"})  # fmt: skip
    assert journeys == [("purchase", 300), ("browse", 1)]


def test_every_rejection_reason_reaches_the_dlq_topic_and_table_and_neighbours_pass(pipeline: Settings) -> None:
    run = _uid()
    ok = touchpoint("page_view", identity={"customer_id": f"C-{run}"}, source=f"src-{run}")
    bad = {
        "invalid_json": b"{nope " + run.encode(),
        "not_an_object": orjson.dumps([run]),
        "missing_identity": orjson.dumps(touchpoint(identity={}, source=f"src-{run}")),
        "unknown_channel": orjson.dumps(touchpoint(channel="fax", source=f"src-{run}")),
        "invalid_field": orjson.dumps(touchpoint(metrics={"csat": 9}, source=f"src-{run}")),
        "future_timestamp": orjson.dumps(touchpoint(at=datetime.now(UTC) + timedelta(hours=2), source=f"src-{run}")),
        "too_large": orjson.dumps(touchpoint(attributes={"blob": "x" * 4000}, source=f"src-{run}",
                                             **{"identity": {"customer_id": "C" * 70_000}})),
        "unsupported_schema_version": orjson.dumps(touchpoint(schema_version=2, source=f"src-{run}")),
    }  # fmt: skip
    inner_bad = touchpoint(metrics={"nps": 42}, source=f"src-{run}")
    batch = {"events": [ok, inner_bad, touchpoint("login", identity={"customer_id": f"C-{run}"})]}
    send_and_drain(pipeline, [*bad.values(), batch])

    dlq = {m.value: dict(m.headers) for m in consume_all(pipeline, "cx.touchpoints.dlq")}
    for reason, payload in bad.items():
        assert dlq[payload]["cx.dlq.reason"].decode() == reason, reason
    assert dlq[orjson.dumps(inner_bad)]["cx.dlq.reason"] == b"invalid_field"
    stored = query(pipeline, "SELECT reason, count() FROM {db}.dead_letters WHERE source = %(s)s OR raw LIKE %(r)s "
                   "GROUP BY reason ORDER BY reason", {"s": f"src-{run}", "r": f"%{run}%"})  # fmt: skip
    expected = sorted({**{r: 1 for r in bad}, "invalid_field": 2}.items())
    assert stored == expected
    accepted = query(pipeline, "SELECT count() FROM {db}.touchpoints FINAL WHERE customer_key = %(k)s",
                     {"k": f"C-{run}"})  # fmt: skip
    assert accepted == [(2,)]


def test_three_strikes_raise_exactly_one_alert_with_its_reasons(pipeline: Settings) -> None:
    run = _uid()
    customer = f"C-{run}"
    start = datetime.now(UTC) - timedelta(days=20)
    call = [  # one experience: a long wait, transfers, nobody resolving it, then a bad survey
        touchpoint("contact_ended", channel="phone", identity={"customer_id": customer}, at=start,
                   context={"contact_id": f"k-{run}"},
                   metrics={"wait_seconds": 400, "transfers": 3, "handled_by": "human", "resolved": False}),
        touchpoint("survey_response", channel="survey", identity={"customer_id": customer},
                   at=start + timedelta(hours=2), context={"contact_id": f"k-{run}"}, metrics={"csat": 1}),
    ]  # fmt: skip
    late = touchpoint("delivery_delayed", channel="logistics", identity={"customer_id": customer},
                      at=start + timedelta(days=3), context={"order_id": f"o-{run}"})  # fmt: skip
    complaint = touchpoint("complaint_filed", channel="wechat", identity={"customer_id": customer},
                           at=start + timedelta(days=6), context={"case_id": f"case-{run}"})  # fmt: skip
    again = touchpoint("complaint_filed", channel="wechat", identity={"customer_id": customer},
                       at=start + timedelta(days=7), context={"case_id": f"case-{run}"})  # fmt: skip
    send_and_drain(pipeline, [*call, late])
    send_and_drain(pipeline, [complaint, again, complaint])  # a duplicate too

    alerts = query(pipeline, "SELECT level, dissatisfied_90d, experience_keys, signals, actions, action_texts "
                   "FROM {db}.churn_alerts FINAL WHERE customer_key = %(k)s", {"k": customer})  # fmt: skip
    assert len(alerts) == 1
    level, count, keys, signals, actions, texts = alerts[0]
    assert (level, count) == ("high", 3)
    assert sorted(keys) == sorted([f"contact:k-{run}", f"order:o-{run}", f"case:case-{run}"])
    assert {"long_wait", "repeated_transfer", "unresolved_contact", "low_csat", "delivery_delayed",
            "complaint"} <= set(signals)  # fmt: skip
    on_topic = [orjson.loads(m.value) for m in consume_all(pipeline, "cx.churn.alerts") if m.key == customer.encode()]
    assert len({a["alert_id"] for a in on_topic}) == 1
    # The playbook's actions (issue 17), the same on the topic and in the table (migration 0009, on 18.16).
    assert [a["action"] for a in on_topic[0]["actions"]] == actions and [
        a["text"] for a in on_topic[0]["actions"]
    ] == texts
    assert {"personal_callback", "proactive_status", "explain_cause"} <= set(actions)
    state = query(pipeline, "SELECT dissatisfied_90d, churn_risk FROM {db}.customer_experience FINAL "
                  "WHERE customer_key = %(k)s", {"k": customer})  # fmt: skip
    assert state == [(3, "high")]


def test_metrics_endpoint_is_clean_and_counts(pipeline: Settings) -> None:
    url = f"http://127.0.0.1:{pipeline.worker_web_port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as resp:
        body = resp.read()
    check = subprocess.run(["promtool", "check", "metrics"], input=body, capture_output=True, check=False)
    assert check.returncode == 0, check.stdout + check.stderr
    text = body.decode()
    for name in ("cx_touchpoints_total{channel=", "cx_rejections_total{reason=", "cx_signals_total{signal=",
                 "cx_churn_alerts_total{level=", "cx_sink_rows_total{table=", "cx_sink_batch_seconds_bucket{",
                 "cx_event_to_sink_lag_seconds_bucket{"):  # fmt: skip
        assert name in text, name


def test_journeys_close_from_the_timer_when_traffic_stops(pipeline: Settings) -> None:
    """A browse session idle for hours and a delivered order: abandoned by the timer, completed by its event."""
    run = _uid()
    customer = f"C-{run}"
    long_ago = datetime.now(UTC) - timedelta(hours=3)
    browse = [touchpoint("page_view", identity={"customer_id": customer}, at=long_ago + timedelta(minutes=i),
                         context={"session_id": f"s-{run}"}) for i in range(3)]  # fmt: skip
    order = {"order_id": f"o-{run}"}
    purchase = [
        touchpoint("order_placed", identity={"customer_id": customer}, at=long_ago, context=order,
                   metrics={"amount": 99.0, "currency": "CNY"}),
        touchpoint("delivered", channel="logistics", identity={"customer_id": customer},
                   at=long_ago + timedelta(hours=2), context=order),
    ]  # fmt: skip
    send_and_drain(pipeline, [*browse, *purchase])
    sql = ("SELECT journey_type, status, touchpoints FROM {db}.journeys FINAL WHERE customer_key = %(k)s "
           "AND merged_into = '' ORDER BY journey_type")  # fmt: skip
    deadline = time.monotonic() + 60  # the expiry timer runs every 5 s, then the next flush
    rows = query(pipeline, sql, {"k": customer})
    while ("browse", "abandoned", 3) not in rows and time.monotonic() < deadline:
        time.sleep(1)
        rows = query(pipeline, sql, {"k": customer})
    assert sorted(rows) == [("browse", "abandoned", 3), ("purchase", "completed", 2)]
    url = f"http://127.0.0.1:{pipeline.worker_web_port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as resp:
        text = resp.read().decode()
    assert 'cx_journeys_closed_total{journey_type="browse",status="abandoned"}' in text
    assert 'cx_journey_duration_seconds_bucket{journey_type="purchase"' in text
