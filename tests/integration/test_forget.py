"""`cxj forget` on the real stack: a customer erased from every table, the identity links and worker state."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from cxj.forget import forget
from schemas.settings import Settings
from sinks.clickhouse import ClickHouse
from sinks.customers import identifier_of
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


class _Logged(ClickHouse):
    """The administrator's connection with every query logged (`log_queries` is off by default on 18.16),
    as on a server whose operators audit queries: what `cxj forget` sends is then in system.query_log."""

    def execute(self, sql: str, params: Any = None, **kwargs: Any) -> Any:
        kwargs["settings"] = {"log_queries": 1, **(kwargs.get("settings") or {})}
        return super().execute(sql, params, **kwargs)


def _admin(settings: Settings, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
    """A query as the administrator, never logged itself (its text names what the test looks for)."""
    ch = ClickHouse(settings.clickhouse_admin, connect_database="default")
    try:
        rows: list[tuple[Any, ...]] = ch.execute(sql, params, settings={"log_queries": 0})
        return rows
    finally:
        ch.close()


def _letters() -> str:
    """A run id of ten letters (g-v): no run of digits a redaction could take for a phone number."""
    return "".join(chr(ord("g") + int(c, 16)) for c in uuid.uuid4().hex[:10])


def _dead_letters(settings: Settings, text: str, subject: str = "") -> list[tuple[Any, ...]]:
    """Dead letters quoting `text` (in any case) or naming `subject`."""
    return sorted(query(settings, "SELECT raw, subjects FROM {db}.dead_letters WHERE positionCaseInsensitive(raw, "
                        "%(t)s) > 0 OR has(subjects, %(s)s)", {"t": text, "s": subject or text}))  # fmt: skip


def _not_json(key: str, tail: str = "") -> bytes:
    """A truncated payload (invalid_json: no subjects) quoting `key` padded, upper-cased, its '-' JSON-escaped."""
    spelled = key.upper().replace("-", "\\u002D", 1)
    return f'{{"event_id": "x{tail}", "identity": {{"customer_id": " {spelled} "}}, "channel": "web"'.encode()


def _leaks(settings: Settings, since: int, needles: list[str]) -> dict[str, list[str]]:
    """Texts of mutations (ever) and of the administrator's logged queries since `since` holding a needle."""
    _admin(settings, "SYSTEM FLUSH LOGS")
    found = {}
    for name, sql in {
        "system.mutations": "SELECT command FROM system.mutations WHERE position(command, %(n)s) > 0",
        "system.query_log": "SELECT query FROM system.query_log WHERE event_time >= toDateTime(%(t)s) "
        "AND user = %(u)s AND (position(query, %(n)s) > 0 OR position(exception, %(n)s) > 0)",
    }.items():
        for needle in needles:
            rows = _admin(settings, sql, {"n": needle, "t": since, "u": settings.clickhouse_admin.user})
            found.update({f"{name}: {needle}": [str(r[0])[:200] for r in rows]} if rows else {})
    return found


def test_forget_erases_a_customer_everywhere_and_leaves_the_neighbour_alone(pipeline: Settings) -> None:
    start = datetime.now(UTC) - timedelta(days=5)
    # Letters only: ten hex digits that happen to be all decimals (1 run in 100) read as a phone number, and
    # dead letters hold phone numbers redacted, so the text search below would not find the run.
    run, other_run = _letters(), _letters()
    story, neighbour = identity_story(run, start), identity_story(other_run, start)
    key, other = story.customer_id, neighbour.customer_id

    def rejected(identity: dict[str, str], name: str, csat: int = 11) -> dict[str, Any]:
        return touchpoint("survey_response", identity=identity, metrics={"csat": csat}, at=start, event_id=name)

    spelled = key.replace("-", "\\u002d", 1)
    escaped = orjson.dumps(rejected({"customer_id": key}, f"{run}-esc")).replace(
        f'"{key}"'.encode(), f'"{spelled}"'.encode()
    )
    assert b"\\u002d" in escaped
    story_dead: list[dict[str, Any] | bytes] = [
        rejected({"customer_id": key}, f"{run}-bad", csat=9),
        escaped,  # `"C\u002d<run>"` in the JSON bytes
        rejected({"customer_id": f" {key} "}, f"{run}-pad"),
        rejected({"phone": _raw(story, "phone")}, f"{run}-phone"),  # the customer's raw phone only
        _not_json(key),
    ]
    neighbour_dead: list[dict[str, Any] | bytes] = [
        rejected({"customer_id": f" {other} "}, f"{other_run}-pad"),
        _not_json(other),
    ]
    send_and_drain(pipeline, [*story.events.values(), *neighbour.events.values(), *story_dead, *neighbour_dead])
    assert len(_holdings(pipeline, key)["churn_alerts"]) == 1
    before = _holdings(pipeline, other)
    assert all(before.values()), before
    hashes = [identifier_of(f"{kind}:{_raw(story, kind)}", pipeline) for kind in ("phone", "email")]
    assert len(_dead_letters(pipeline, run, hashes[0])) == 5
    neighbour_letters = _dead_letters(pipeline, other_run)
    assert len(neighbour_letters) == 2

    assert _traces(pipeline, [run, *hashes])  # the customer is there, by raw ids and by hashes
    since = int(_admin(pipeline, "SELECT toUInt32(now())")[0][0])
    admin = _Logged(pipeline.clickhouse_admin, connect_database="default")
    try:
        report = forget(pipeline, key, timeout=90, clickhouse=admin)
    finally:
        admin.close()
    assert report.key == key
    assert report.identifiers == 5  # anonymous id, device, phone, e-mail, WeChat
    assert report.rows["touchpoints"] == 5 and report.rows["dead_letters"] == 5
    assert report.state_entries >= 2  # the customer's state and the forwards of the keys merged into it

    # Every String column of every table: nothing left by raw id, hash, key, event id or experience key;
    # no dead letter in any spelling (escaped, padded, upper case, by phone only); the neighbour untouched.
    assert _traces(pipeline, [run, *hashes]) == []
    assert _dead_letters(pipeline, run, hashes[0]) == []
    assert _dead_letters(pipeline, other_run) == neighbour_letters
    assert _holdings(pipeline, other) == before
    # No text ClickHouse keeps of the erasure names the customer: mutations (readable by every user on
    # 18.16) and the logged queries carry the request id only; the subjects are gone with the request.
    phone, email = _raw(story, "phone"), _raw(story, "email")
    needles = [run, run.upper(), *(h.split(":", 1)[1] for h in hashes), phone, phone[-11:], email, email.lower()]
    assert _leaks(pipeline, since, needles) == {}
    mutations = _admin(pipeline, "SELECT table FROM system.mutations WHERE position(command, %(r)s) > 0",
                       {"r": report.request_id})  # fmt: skip
    assert {"touchpoints", "dead_letters", "identity_links", "erasure_subjects"} <= {str(t) for (t,) in mutations}
    # The queries were logged, so the check above saw them: those naming the request id are there.
    assert f"system.query_log: {report.request_id}" in _leaks(pipeline, since, [report.request_id])
    assert query(pipeline, "SELECT count() FROM {db}.erasure_subjects WHERE request_id = %(r)s",
                 {"r": report.request_id}) == [(0,)]  # fmt: skip

    # Worker state: tombstones on the compacted changelog and links topics, so a restart cannot bring it back.
    state, links = _latest(pipeline, "cx.internal.state"), _latest(pipeline, "cx.identity.links")
    assert state[key] is None
    assert {
        i: links[i] for i in [f"anon:anon-{run}", f"device:dev-{run}", f"wechat:wx-{run}", *hashes]
    } == dict.fromkeys([f"anon:anon-{run}", f"device:dev-{run}", f"wechat:wx-{run}", *hashes])
    audit = query(pipeline, "SELECT stage, sum(erased) FROM {db}.erasures FINAL WHERE request_id = %(r)s "
                  "GROUP BY stage ORDER BY stage", {"r": report.request_id})  # fmt: skip
    assert dict(audit) == {"clickhouse": sum(report.rows.values()), "identity": 5, "state": report.state_entries}

    again = forget(pipeline, key, timeout=90)  # idempotent: nothing left to delete
    assert sum(again.rows.values()) == 0 and again.identifiers == 0

    # The workers forgot too: the anonymous id is a stranger again, and the customer_id starts from zero.
    later = start + timedelta(days=4)
    send_and_drain(pipeline, [
        touchpoint("page_view", identity={"anonymous_id": f"anon-{run}"}, at=later, event_id=f"{run}-back1"),
        touchpoint("complaint_filed", identity={"customer_id": key}, context={"case_id": f"n-{run}"},
                   at=later, event_id=f"{run}-back2"),
    ])  # fmt: skip
    keys = query(pipeline, "SELECT event_id, customer_key FROM {db}.touchpoints FINAL WHERE event_id LIKE %(p)s "
                 "ORDER BY event_id", {"p": f"{run}-back%"})  # fmt: skip
    assert keys == [(f"{run}-back1", f"~anon:anon-{run}"), (f"{run}-back2", key)]
    counters = query(pipeline, "SELECT dissatisfied_90d, toString(churn_risk) FROM {db}.customer_experience FINAL "
                     "WHERE customer_key = %(k)s", {"k": key})  # fmt: skip
    assert counters == [(1, "low")]


def test_forget_finds_a_customer_in_payloads_that_are_not_json_by_any_spelling_and_no_one_else(
    pipeline: Settings,
) -> None:
    # Letters only: a run of digits in an id could be redacted as a phone number.
    run = _letters()
    key = f"P-{run}"
    mine = [
        f'{{"identity": {{"customer_id": "{key}"'.encode(),
        f'{{"identity": {{"customer_id": " {key.lower()} "'.encode(),
        f'{{"identity": {{"customer_id": "\\u0050\\u002d{run}\\u0020"'.encode(),
        f"customer_id={key}&channel=web".encode(),
        f"'{key}'".encode(),
        key.upper().encode(),
    ]
    theirs = [
        f'{{"identity": {{"customer_id": "{key}0"'.encode(),
        f'{{"identity": {{"customer_id": "{key}-2"'.encode(),
        f'{{"identity": {{"customer_id": "x{key}"'.encode(),
        f'{{"identity": {{"customer_id": "{key}.1"'.encode(),
        f'{{"identity": {{"customer_id": "{key}\\u002d2"'.encode(),
    ]
    send_and_drain(pipeline, [*mine, *theirs])
    assert len(_dead_letters(pipeline, run)) == len(mine) + len(theirs)

    report = forget(pipeline, key, timeout=90)
    assert report.rows["dead_letters"] == len(mine)
    assert sorted(raw for raw, _ in _dead_letters(pipeline, run)) == sorted(t.decode() for t in theirs)


def _raw(story: Story, kind: str) -> str:
    login = story.events["login"]["identity"]
    return str(login["phone"] if kind == "phone" else login["email"])
