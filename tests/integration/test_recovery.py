"""Recovery on the real stack (issue 17): each alert's outcome in `alert_outcomes`, the metric, the report.

Four customers, three complaints each (one churn alert each), then: a compensation two days later and a
proactive update (recovered, decided: the 30-day window passed long ago), a new complaint a week later
(relapsed), nothing at all (lost), and, for an alert five days old, nothing yet (pending, still in its window).
"""

from __future__ import annotations

import time
import urllib.request
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from cxj.report import collect
from schemas.settings import Settings
from sinks.clickhouse import ClickHouse
from tests.factories import touchpoint
from tests.integration.pipeline_support import query, send_and_drain


def _strikes(customer: str, start: datetime) -> list[dict[str, Any]]:
    return [touchpoint("complaint_filed", channel="wechat", identity={"customer_id": customer},
                       at=start + timedelta(hours=6 * i), context={"case_id": f"{customer}-case-{i}"})
            for i in range(3)]  # fmt: skip


def _metric(settings: Settings, name: str, label: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{settings.worker_web_port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith(f'{name}{{outcome="{label}"}}'))  # fmt: skip


def test_every_alert_gets_its_outcome_in_event_time(pipeline: Settings) -> None:
    run = uuid.uuid4().hex[:8]
    now = datetime.now(UTC)
    who = {kind: f"R-{run}-{kind}" for kind in ("recovered", "relapsed", "lost", "pending")}
    before = {o: _metric(pipeline, "cx_alert_outcomes_total", o) for o in ("recovered", "relapsed", "lost")}
    long_ago = now - timedelta(days=50)
    events = [
        *_strikes(who["recovered"], long_ago),
        touchpoint("compensation_offered", channel="phone", identity={"customer_id": who["recovered"]},
                   at=long_ago + timedelta(days=2), context={"case_id": f"{who['recovered']}-case-2"},
                   metrics={"amount": 80.0, "currency": "CNY"}),
        touchpoint("notification_sent", channel="sms", identity={"customer_id": who["recovered"]},
                   at=long_ago + timedelta(days=3), context={"order_id": f"{who['recovered']}-order"}),
        *_strikes(who["relapsed"], long_ago),
        touchpoint("complaint_filed", channel="web", identity={"customer_id": who["relapsed"]},
                   at=long_ago + timedelta(days=7), context={"case_id": f"{who['relapsed']}-again"}),
        *_strikes(who["lost"], long_ago),
        *_strikes(who["pending"], now - timedelta(days=5)),
    ]  # fmt: skip
    # Outcomes are decided in event time: touchpoints of today, on every partition, move it past the windows.
    tick = [touchpoint("login", channel="app", identity={"customer_id": f"R-{run}-tick-{i}"}, at=now)
            for i in range(8 * pipeline.topic_partitions)]  # fmt: skip
    send_and_drain(pipeline, [*events, *tick])
    window_end = long_ago + timedelta(hours=12) + timedelta(days=30)
    expected = {
        "recovered": ("recovered", 1, (long_ago + timedelta(days=2)).replace(microsecond=0, tzinfo=None)),
        "relapsed": ("relapsed", 1, (long_ago + timedelta(days=7)).replace(microsecond=0, tzinfo=None)),
        "lost": ("lost", 1, window_end.replace(microsecond=0, tzinfo=None)),
        "pending": ("pending", 0, None),
    }
    deadline = time.monotonic() + 30  # a window closed by another customer's touchpoint: the 5 s timer decides
    while True:
        rows = query(pipeline, "SELECT customer_key, toString(outcome), decided, outcome_at FROM {db}.alert_outcomes "
                     "FINAL WHERE customer_key LIKE %(p)s ORDER BY customer_key", {"p": f"R-{run}-%"})  # fmt: skip
        got = {key.rsplit("-", 1)[1]: (outcome, decided, at) for key, outcome, decided, at in rows}
        if got == expected or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert got == expected, got
    # Each alert's id is the churn alert's.
    ids = query(pipeline, "SELECT count() FROM {db}.alert_outcomes FINAL WHERE customer_key LIKE %(p)s AND "
                "alert_id IN (SELECT alert_id FROM {db}.churn_alerts WHERE customer_key LIKE %(p)s)",
                {"p": f"R-{run}-%"})  # fmt: skip
    assert ids == [(4,)]
    # Sent again: nothing changes (the same outcomes, no new decision counted).
    send_and_drain(pipeline, [*events, *tick])
    after = {o: _metric(pipeline, "cx_alert_outcomes_total", o) for o in ("recovered", "relapsed", "lost")}
    assert {o: after[o] - before[o] for o in after} == {"recovered": 1, "relapsed": 1, "lost": 1}
    again = query(pipeline, "SELECT customer_key, toString(outcome), decided, outcome_at FROM {db}.alert_outcomes "
                  "FINAL WHERE customer_key LIKE %(p)s ORDER BY customer_key", {"p": f"R-{run}-%"})  # fmt: skip
    assert again == rows
    # The report reads the rollup, as the BI user: each outcome counted once under the alerts' first signal.
    report = collect(ClickHouse(pipeline.clickhouse_bi))
    complaint = next(r for r in report.recovery if r[:2] == ("first_signal", "complaint"))
    assert complaint[4] >= 1 and complaint[5] >= 1 and complaint[6] >= 1, complaint  # recovered, relapsed, lost
    assert ("action", "review_fairly") in {(r[0], r[1]) for r in report.recovery}
    informed = {row[0]: row for row in report.recovery_informed}
    assert informed[1][3] >= 1, informed  # the recovered customer got a proactive update after the alert
