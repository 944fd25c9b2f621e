"""Identity across channels and partitions on the real stack: the story of issue #3, and two workers."""

from __future__ import annotations

import random
import time
import urllib.request
import uuid
from datetime import UTC, datetime, timedelta

import orjson
import pytest

from cxj.demo import WorkerProcess
from schemas.settings import Settings
from tests.integration.pipeline_support import consume_all, free_ports, query, send_and_drain
from tests.stories import Story, identity_story

pytestmark = pytest.mark.integration


def _assert_story_ended_on_customer(settings: Settings, story: Story) -> None:
    customer = story.customer_id
    state = query(settings, "SELECT dissatisfied_90d, churn_risk FROM {db}.customer_experience FINAL "
                  "WHERE customer_key = %(k)s", {"k": customer})  # fmt: skip
    assert state == [(3, "high")], customer
    alerts = query(settings, "SELECT level, experience_keys FROM {db}.churn_alerts FINAL WHERE customer_key = %(k)s",
                   {"k": customer})  # fmt: skip
    assert len(alerts) == 1, alerts
    assert alerts[0][0] == "high"
    assert set(alerts[0][1]) == story.experience_keys
    resolved = query(settings, "SELECT event_id, customer_key FROM {db}.touchpoints_resolved "
                     "WHERE event_id IN %(ids)s", {"ids": tuple(story.event_ids)})  # fmt: skip
    assert dict(resolved) == dict.fromkeys(story.event_ids, customer)
    linked = query(settings, "SELECT identifier, argMax(customer_key, linked_at) FROM {db}.identity_links "
                   "WHERE identifier LIKE %(anon)s OR identifier LIKE %(wx)s GROUP BY identifier",
                   {"anon": f"anon:anon-{customer[2:]}", "wx": f"wechat:wx-{customer[2:]}"})  # fmt: skip
    assert {key for _, key in linked} == {customer}, linked


def test_identity_story_in_arrival_order_worst_for_stitching(pipeline: Settings) -> None:
    """Call, chat, WeChat and e-mail first (all anonymous), the login that ties them last."""
    run = uuid.uuid4().hex[:10]
    story = identity_story(run, datetime.now(UTC) - timedelta(days=5))
    e = story.events
    send_and_drain(pipeline, [e["call"], e["chat"], e["wechat"], e["email"]])
    before = query(pipeline, "SELECT count() FROM {db}.churn_alerts FINAL WHERE customer_key = %(k)s",
                   {"k": story.customer_id})  # fmt: skip
    assert before == [(0,)]
    send_and_drain(pipeline, [e["login"], e["call"]])  # and a duplicate of the call
    _assert_story_ended_on_customer(pipeline, story)
    on_topic = [orjson.loads(m.value) for m in consume_all(pipeline, "cx.churn.alerts")
                if m.key == story.customer_id.encode()]  # fmt: skip
    assert len(on_topic) == 1
    assert set(on_topic[0]["experience_keys"]) == story.experience_keys
    # Tombstones (value None) are identifiers `cxj forget` erased.
    changes = [orjson.loads(m.value) for m in consume_all(pipeline, "cx.identity.links") if m.value is not None]
    assert any(c["customer_key"] == story.customer_id for c in changes)


def test_identity_story_in_order(pipeline: Settings) -> None:
    run = uuid.uuid4().hex[:10]
    story = identity_story(run, datetime.now(UTC) - timedelta(days=5))
    e = story.events
    send_and_drain(pipeline, [e["chat"], e["login"], e["wechat"], e["call"], e["email"]])
    _assert_story_ended_on_customer(pipeline, story)


def _metric(port: int, series: str) -> float:
    """The sum of every sample whose line starts with `series` (a name, or a name and labels)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(series))


def _wait_shared(ports: list[int], partitions: int, timeout: float = 90) -> None:
    """Until every worker holds input partitions and together they hold all of them."""
    series = 'cx_assigned_partitions{topic="cx.touchpoints"}'
    deadline = time.monotonic() + timeout
    held: list[float] = []
    while time.monotonic() < deadline:
        held = [_metric(port, series) for port in ports]
        if all(held) and sum(held) == partitions:
            return
        time.sleep(0.5)
    raise AssertionError(f"workers did not share the partitions: {held}")


def test_two_workers_stitch_across_partitions(pipeline: Settings) -> None:
    """A second worker joins the group; 60 stories in shuffled order all end on their customers."""
    second = WorkerProcess(pipeline, name="worker-2", web_port=free_ports(1)[0])
    try:
        second.start()
        _wait_shared([pipeline.worker_web_port, second.web_port], pipeline.topic_partitions)
        rng = random.Random(20261123)
        stories = [identity_story(uuid.uuid4().hex[:10], datetime.now(UTC) - timedelta(days=5), rng)
                   for _ in range(60)]  # fmt: skip
        events = [event for story in stories for event in story.events.values()]
        rng.shuffle(events)
        send_and_drain(pipeline, events, timeout=240)
        for story in stories:
            _assert_story_ended_on_customer(pipeline, story)
        for port in (pipeline.worker_web_port, second.web_port):
            assert _metric(port, "cx_touchpoints_total{") > 0, f"worker on {port} ingested nothing"
            assert _metric(port, "cx_signals_total{") > 0, f"worker on {port} stitched nothing"
    finally:
        second.stop()
