"""`cxj forget` on the real stack: a customer erased from every table, the identity links and worker state."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from cxj.forget import forget, identifier_of
from cxj.settings import Settings
from tests.factories import touchpoint
from tests.integration.pipeline_support import consume_all, query, send_and_drain, string_columns
from tests.stories import Story, identity_story

pytestmark = pytest.mark.integration

_PER_TABLE = {
    "touchpoints": "SELECT event_id, stitched_key FROM {db}.touchpoints_resolved WHERE customer_key = %(k)s",
    "experience_signals": "SELECT event_id, signal FROM {db}.experience_signals_resolved WHERE customer_key = %(k)s",
    "customer_experience": "SELECT dissatisfied_90d, toString(churn_risk) FROM {db}.customer_experience FINAL "
    "WHERE customer_key = %(k)s",
    "churn_alerts": "SELECT alert_id, experience_keys FROM {db}.churn_alerts FINAL WHERE customer_key = %(k)s",
    "journeys": "SELECT journey_id, toString(status) FROM {db}.journeys FINAL WHERE customer_key = %(k)s",
    "identity_links": "SELECT identifier FROM {db}.identity_links FINAL WHERE customer_key = %(k)s",
    "risk_daily": "SELECT day FROM {db}.risk_daily WHERE customer_key = %(k)s",
}


def _holdings(settings: Settings, key: str) -> dict[str, list[tuple[Any, ...]]]:
    return {table: sorted(query(settings, sql, {"k": key})) for table, sql in _PER_TABLE.items()}


def _traces(settings: Settings, needles: list[str]) -> list[str]:
    """Every (table.column, needle) where a needle still appears in any String column of any table."""
    found = []
    for table, column in string_columns(settings):
        for needle in needles:
            sql = f"SELECT count() FROM {{db}}.{table} WHERE position(toString({column}), %(n)s) > 0"
            if query(settings, sql, {"n": needle})[0][0]:
                found.append(f"{table}.{column}: {needle}")
    return found


def _latest(settings: Settings, topic: str) -> dict[str, bytes | None]:
    return {m.key.decode(): m.value for m in consume_all(settings, topic, timeout_ms=1500) if m.key}


def test_forget_erases_a_customer_everywhere_and_leaves_the_neighbour_alone(pipeline: Settings) -> None:
    start = datetime.now(UTC) - timedelta(days=5)
    run, other_run = uuid.uuid4().hex[:10], uuid.uuid4().hex[:10]
    story, neighbour = identity_story(run, start), identity_story(other_run, start)
    story_dead = touchpoint("survey_response", identity={"customer_id": story.customer_id}, metrics={"csat": 9},
                            at=start, event_id=f"{run}-bad")  # fmt: skip
    send_and_drain(pipeline, [*story.events.values(), *neighbour.events.values(), story_dead])
    assert len(_holdings(pipeline, story.customer_id)["churn_alerts"]) == 1
    before = _holdings(pipeline, neighbour.customer_id)
    assert all(before.values()), before

    hashes = [identifier_of(f"{kind}:{_raw(story, kind)}", pipeline) for kind in ("phone", "email")]
    assert _traces(pipeline, [run, *hashes])  # the customer is there, by raw ids and by hashes

    report = forget(pipeline, story.customer_id, timeout=90)
    assert report.key == story.customer_id
    assert report.identifiers == 5  # anonymous id, device, phone, e-mail, WeChat
    assert report.rows["touchpoints"] == 5 and report.rows["dead_letters"] == 1
    assert report.state_entries >= 2  # the customer's state and the forwards of the keys merged into it

    # Every String column of every table: nothing left by raw id, hash, key, event id or experience key.
    assert _traces(pipeline, [run, *hashes]) == []
    assert _holdings(pipeline, neighbour.customer_id) == before
    # Worker state: tombstones on the compacted changelog and links topics, so a restart cannot bring it back.
    state, links = _latest(pipeline, "cx.internal.state"), _latest(pipeline, "cx.identity.links")
    assert state[story.customer_id] is None
    assert {
        i: links[i] for i in [f"anon:anon-{run}", f"device:dev-{run}", f"wechat:wx-{run}", *hashes]
    } == dict.fromkeys([f"anon:anon-{run}", f"device:dev-{run}", f"wechat:wx-{run}", *hashes])
    audit = query(pipeline, "SELECT stage, sum(erased) FROM {db}.erasures FINAL WHERE request_id = %(r)s "
                  "GROUP BY stage ORDER BY stage", {"r": report.request_id})  # fmt: skip
    assert dict(audit) == {"clickhouse": sum(report.rows.values()), "identity": 5, "state": report.state_entries}

    again = forget(pipeline, story.customer_id, timeout=90)  # idempotent: nothing left to delete
    assert sum(again.rows.values()) == 0 and again.identifiers == 0

    # The workers forgot too: the anonymous id is a stranger again, and the customer_id starts from zero.
    later = start + timedelta(days=4)
    send_and_drain(pipeline, [
        touchpoint("page_view", identity={"anonymous_id": f"anon-{run}"}, at=later, event_id=f"{run}-back1"),
        touchpoint("complaint_filed", identity={"customer_id": story.customer_id}, context={"case_id": f"n-{run}"},
                   at=later, event_id=f"{run}-back2"),
    ])  # fmt: skip
    keys = query(pipeline, "SELECT event_id, customer_key FROM {db}.touchpoints FINAL WHERE event_id LIKE %(p)s "
                 "ORDER BY event_id", {"p": f"{run}-back%"})  # fmt: skip
    assert keys == [(f"{run}-back1", f"~anon:anon-{run}"), (f"{run}-back2", story.customer_id)]
    counters = query(pipeline, "SELECT dissatisfied_90d, toString(churn_risk) FROM {db}.customer_experience FINAL "
                     "WHERE customer_key = %(k)s", {"k": story.customer_id})  # fmt: skip
    assert counters == [(1, "low")]


def _raw(story: Story, kind: str) -> str:
    login = story.events["login"]["identity"]
    return str(login["phone"] if kind == "phone" else login["email"])
