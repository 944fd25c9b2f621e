"""Alerting end to end: the local Prometheus loads exactly deploy/prometheus/rules, scrapes the worker, and a
customer crossing into high churn risk reaches the Alertmanager webhook."""

from __future__ import annotations

import time
import urllib.request
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from schemas.settings import Settings
from tests.integration.pipeline_support import WebhookReceiver, send_and_drain
from tests.stories import identity_story

pytestmark = pytest.mark.integration

RULES = Path(__file__).resolve().parents[2] / "deploy" / "prometheus" / "rules"


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return orjson.loads(resp.read())


def test_prometheus_loads_exactly_the_deploy_rules(stack: Settings) -> None:
    expected = {
        rule.get("alert") or rule.get("record")
        for path in RULES.glob("*.yml")
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
    }
    deadline = time.monotonic() + 30
    loaded: set[str] = set()
    while time.monotonic() < deadline and loaded != expected:
        groups = _get(f"{stack.prometheus_url}/api/v1/rules")["data"]["groups"]
        loaded = {rule["name"] for group in groups for rule in group["rules"]}
        time.sleep(1)
    assert loaded == expected


def _wait_for_a_baseline(settings: Settings, timeout: float = 60) -> None:
    """Until Prometheus holds a sample of the alert counter from this worker: `increase()` needs one before the
    counter moves (a series whose first scrape already reads 1 shows no increase). Kafka's quick group join
    lets a story alert within a few seconds of the worker's start, before the first scrape."""
    url = f"{settings.prometheus_url}/api/v1/query?query=cx_churn_alerts_total%7Blevel%3D%22high%22%7D"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _get(url)["data"]["result"]:
            return
        time.sleep(1)
    raise AssertionError(f"Prometheus has no sample of cx_churn_alerts_total after {timeout:.0f} s")


def test_a_churn_alert_reaches_the_webhook(pipeline: Settings, webhook: WebhookReceiver) -> None:
    _wait_for_a_baseline(pipeline)
    story = identity_story(uuid.uuid4().hex[:10], datetime.now(UTC) - timedelta(days=5))
    send_and_drain(pipeline, list(story.events.values()))
    # Prometheus scrapes every 5 s and evaluates every 5 s; Alertmanager waits 5 s for the group.
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        hits = [a for a in webhook.alerts() if a["labels"].get("alertname") == "CxCustomersCrossedIntoHighRisk"]
        if hits:
            break
        time.sleep(1)
    else:
        targets = _get(f"{pipeline.prometheus_url}/api/v1/targets")["data"]["activeTargets"]
        raise AssertionError(
            f"no churn alert at the webhook; targets: {[(t['scrapeUrl'], t['health']) for t in targets]}"
        )
    alert = hits[0]
    assert alert["status"] == "firing"
    assert (alert["labels"]["severity"], alert["labels"]["team"], alert["labels"]["level"]) == (
        "ticket",
        "cx-care",
        "high",
    )
    assert "cx.churn_alerts" in alert["annotations"]["runbook"]
    # The playbook's actions for the crossing, counted from cx_churn_alert_actions_total (issue 17).
    assert "personal_callback (" in alert["annotations"]["actions"], alert["annotations"]
