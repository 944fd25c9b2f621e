"""`cxj check` on a real server: each invariant catches what breaks it, and the suite's own traffic is clean.

The broken cases live in a scratch database (conftest), so the final check, which runs after every other
test of the session, reads only what the pipeline wrote.
"""

from __future__ import annotations

import subprocess
import sys
import time
import uuid

import pytest

from cxj.check import run_checks
from schemas.rows import AlertOutcomeRow, AlertRow, CustomerRow, IdentityOverrideRow, JourneyRow, SignalRow
from schemas.settings import Settings
from sinks.clickhouse import ClickHouse
from sinks.writer import Batch, ClickHouseWriter

DAY = 86_400


def _customer(key: str, dissatisfied: int, t: int, merged_into: str = "") -> CustomerRow:
    risk = ("none", "low", "elevated", "high")[min(dissatisfied, 3)]
    return CustomerRow(key, dissatisfied, 0, -50.0, risk, t, 1, 0.0, dissatisfied, 0, merged_into, t)


def _strikes(key: str, times: list[int]) -> list[SignalRow]:
    return [SignalRow(f"{key}-e{i}", key, f"case:{key}-{i}", "complaint", -1, "fairness", "wechat",
                      "complaint_filed", t, "") for i, t in enumerate(times)]  # fmt: skip


def _alert(key: str, at: int, emitted: int) -> AlertRow:
    return AlertRow(
        str(uuid.uuid4()), key, "high", "elevated", 3, [], ["complaint"], ["fairness"], at, 0.0, emitted, [], []
    )


def test_each_check_counts_what_breaks_it_and_nothing_else(stack: Settings, scratch: ClickHouse) -> None:
    t0 = int(time.time()) - 30 * DAY
    now = int(time.time())
    orphan = JourneyRow("purchase:O1@~anon:m1", "~anon:m1", "purchase", "open", t0, None, t0, 2, ["app"], 0, "", 1, t0)
    rows: dict[str, list[tuple[object, ...]]] = {
        "customer_experience": [
            _customer("OK1", 3, t0 + 5 * DAY),  # high, alerted once: fine
            _customer("H1", 3, t0 + 5 * DAY),  # high, never alerted
            _customer("D1", 3, t0 + 5 * DAY),  # alerted twice for one episode
            _customer("R1", 2, t0 + 5 * DAY),  # three strikes in the window, but says two
            _customer("P1", 5, t0 + 5 * DAY),  # two keys each alerted before they were linked: allowed
            _customer("~anon:p1", 0, t0 + 2 * DAY, merged_into="P1"),
            _customer("~anon:m1", 0, t0 + DAY, merged_into="C9"),  # merged away, no override left behind
            _customer("~anon:h2", 3, t0 + 5 * DAY)._replace(updated_at=now),  # inside the alert hold: not judged
        ],
        "experience_signals": [
            *_strikes("OK1", [t0, t0 + DAY, t0 + 2 * DAY]),
            *_strikes("H1", [t0, t0 + DAY, t0 + 2 * DAY]),
            *_strikes("D1", [t0, t0 + DAY, t0 + 2 * DAY]),
            *_strikes("R1", [t0, t0 + DAY, t0 + 2 * DAY]),
            *_strikes("P1", [t0 + DAY, t0 + 2 * DAY, t0 + 3 * DAY]),
            *_strikes("~anon:p1", [t0, t0 + DAY // 2]),
            *_strikes("~anon:h2", [t0, t0 + DAY, t0 + 2 * DAY]),
        ],
        "churn_alerts": [
            _alert("OK1", t0 + 2 * DAY, now),
            _alert("D1", t0 + 2 * DAY, now),
            _alert("D1", t0 + 3 * DAY, now),
            _alert("~anon:p1", t0 + DAY, now - 100),
            _alert("P1", t0 + 2 * DAY, now - 90),
        ],
        "identity_overrides": [IdentityOverrideRow("~anon:p1", "P1", now - 60, 2)],
        "journeys": [orphan],
    }
    rows["alert_outcomes"] = [AlertOutcomeRow(a.alert_id, a.customer_key, a.triggered_at, "pending", 0, None, 1, now)
                              for a in rows["churn_alerts"]]  # type: ignore[attr-defined]  # fmt: skip
    rows["churn_alerts"].append(_alert("W1", t0 + 2 * DAY, now + 60))  # raised after 0010, never watched
    ClickHouseWriter(scratch).write(Batch(rows, sum(map(len, rows.values()))))
    found = {r.name: (r.failures, r.example) for r in run_checks(scratch, stack)}
    assert found == {
        "high_risk_without_alert": (1, "H1"),
        "two_alerts_one_episode": (1, "D1"),
        "dissatisfied_recount": (1, "R1"),
        "left_under_merged_keys": (1, "~anon:m1"),
        "alert_without_outcome": (1, "W1"),
    }


@pytest.mark.order_last
def test_the_suites_own_traffic_passes_every_check(pipeline: Settings) -> None:
    """`cxj check` as on-call runs it (the BI user, exit status), after the suite's traffic."""
    done = subprocess.run([sys.executable, "-m", "cxj", "--home", str(pipeline.home), "check"],
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "every check passed" in done.stdout
