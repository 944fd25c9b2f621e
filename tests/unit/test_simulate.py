"""The traffic simulator: deterministic, valid per Contract 1, broken on purpose where asked, story-driven."""

from __future__ import annotations

import itertools
import random
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

import orjson
import pytest

from cxj.simulate import (
    INVALID_REASONS,
    Pacer,
    SimulationConfig,
    generate,
    generate_raw,
    messages,
    produce,
)
from schemas.errors import StackError
from schemas.records import TouchpointRecord
from schemas.settings import Settings
from streams.domain.ingest import IngestConfig, IngestResult, Message, ingest
from streams.domain.pii import normalize_email, normalize_phone
from tests.factories import SECRET, policy
from tests.unit.streams.cluster import Cluster

NOW = datetime(2026, 11, 20, 9, 30, tzinfo=UTC)
Run = tuple[SimulationConfig, list[Any]]


def config(**overrides: Any) -> SimulationConfig:
    base: dict[str, Any] = {"seed": 7, "customers": 400, "events": 4000, "days": 30.0, "now": NOW}
    return SimulationConfig(**{**base, **overrides})


def run_ingest(items: list[Any], cfg: SimulationConfig, region: str = "CN") -> IngestResult:
    msgs = [
        Message(item if isinstance(item, bytes) else orjson.dumps(item), "cx.touchpoints", 0, offset, 0)
        for offset, item in enumerate(items)
    ]
    return ingest(msgs, IngestConfig(SECRET, region, frozenset({"null", "0", "-1"})), now_ms=cfg.now_ms)


@cache
def raw_run(seed: int = 7, events: int = 20_000, customers: int = 2_000) -> Run:
    cfg = config(seed=seed, events=events, customers=customers, days=60.0, invalid_share=0.01)
    return cfg, list(generate_raw(cfg))


# --- determinism and counts ----------------------------------------------------------------------


def test_same_config_gives_byte_identical_traffic_and_another_seed_does_not() -> None:
    def dump(cfg: SimulationConfig) -> list[bytes]:
        return [i if isinstance(i, bytes) else orjson.dumps(i) for i in generate_raw(cfg)]

    first = dump(config(invalid_share=0.02))
    assert first == dump(config(invalid_share=0.02))
    assert first != dump(config(invalid_share=0.02, seed=8))
    assert first != dump(config(invalid_share=0.02, now=NOW + timedelta(hours=1)))


def test_counts_are_exact_and_raw_is_generate_plus_broken_payloads() -> None:
    cfg = config(events=3001, invalid_share=0.03)
    raw = list(generate_raw(cfg))
    valid = list(generate(cfg))
    assert len(raw) == 3001
    assert cfg.invalid_count == 90 and len(valid) == cfg.valid_count == 2911
    assert [i for i in raw if isinstance(i, dict)] == valid
    assert sum(isinstance(i, bytes) for i in raw) == 90


def test_no_broken_payloads_when_invalid_share_is_zero_and_nothing_for_zero_events() -> None:
    assert all(isinstance(i, dict) for i in generate_raw(config(events=500, invalid_share=0.0)))
    assert list(generate_raw(config(events=0))) == []


def test_generation_is_lazy() -> None:
    started = time.monotonic()
    first = list(itertools.islice(generate(config(events=5_000_000, customers=50_000)), 1000))
    assert len(first) == 1000
    assert time.monotonic() - started < 10


@pytest.mark.parametrize(
    "bad", [{"customers": 0}, {"events": -1}, {"days": 0}, {"unhappy_share": 1.5}, {"invalid_share": -0.1}]
)
def test_config_rejects_nonsense(bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        config(**bad)


def test_config_needs_an_aware_now() -> None:
    with pytest.raises(ValueError, match="timezone"):
        config(now=datetime(2026, 11, 20))


# --- Contract 1: valid and broken ----------------------------------------------------------------


def test_every_valid_touchpoint_passes_ingest() -> None:
    cfg, raw = raw_run()
    valid = [i for i in raw if isinstance(i, dict)]
    result = run_ingest(valid, cfg)
    assert result.rejected == []
    assert len(result.records) == len(valid)


def test_each_broken_payload_is_rejected_once_and_every_reason_occurs() -> None:
    cfg, raw = raw_run()
    result = run_ingest(raw, cfg)
    broken = {offset for offset, item in enumerate(raw) if isinstance(item, bytes)}
    assert sorted(d.offset for d in result.rejected) == sorted(broken)
    reasons = Counter(d.reason.value for d in result.rejected)
    assert set(reasons) == set(INVALID_REASONS)
    assert max(reasons.values()) - min(reasons.values()) <= 1  # they take turns
    assert len(broken) == pytest.approx(0.01 * len(raw), abs=1)


def test_an_all_broken_run_still_gives_every_reason() -> None:
    cfg = config(events=40, invalid_share=1.0)
    raw = list(generate_raw(cfg))
    assert all(isinstance(i, bytes) for i in raw)
    result = run_ingest(raw, cfg)
    assert result.records == [] and len(result.rejected) == 40
    assert Counter(d.reason.value for d in result.rejected) == {r: 5 for r in INVALID_REASONS}


def test_broken_payloads_are_spread_through_the_stream() -> None:
    _, raw = raw_run()
    positions = [i for i, item in enumerate(raw) if isinstance(item, bytes)]
    quarter = len(raw) // 4
    assert all(any(q * quarter <= p < (q + 1) * quarter for p in positions) for q in range(4))


def test_times_are_rfc3339_with_offset_inside_the_window() -> None:
    cfg, raw = raw_run()
    start = cfg.now - timedelta(days=cfg.days)
    offsets = Counter()
    for item in raw:
        if isinstance(item, dict):
            when = datetime.fromisoformat(item["occurred_at"])
            assert when.tzinfo is not None
            assert start < when <= cfg.now
            offsets[item["occurred_at"][-6:] if item["occurred_at"][-1] != "Z" else "Z"] += 1
    assert set(offsets) == {"+08:00", "Z"}  # local feeders and a UTC one


def test_times_cover_the_window_up_to_now() -> None:
    cfg, raw = raw_run()
    times = sorted(datetime.fromisoformat(i["occurred_at"]) for i in raw if isinstance(i, dict))
    assert times[0] - (cfg.now - timedelta(days=cfg.days)) < timedelta(hours=12)
    assert cfg.now - times[-1] < timedelta(hours=6)
    week = Counter(int((cfg.now - t) / timedelta(days=7)) for t in times)
    assert min(week[w] for w in range(8)) > 0.5 * max(week.values())  # evenly spread, not front-loaded


def test_arrival_is_roughly_chronological_with_late_events_and_duplicates() -> None:
    _, raw = raw_run()
    valid = [i for i in raw if isinstance(i, dict)]
    ms = [datetime.fromisoformat(i["occurred_at"]).timestamp() for i in valid]
    backwards = sum(1 for a, b in itertools.pairwise(ms) if b < a)
    assert 0.01 * len(ms) < backwards < 0.5 * len(ms)
    assert sum(1 for a, b in itertools.pairwise(ms) if a - b > 3600) > 0  # late arrivals
    ids = Counter(i["event_id"] for i in valid)
    dupes = [eid for eid, n in ids.items() if n > 1]
    assert 0 < len(dupes) < 0.02 * len(valid)
    first = {i["event_id"]: orjson.dumps(i) for i in reversed(valid)}
    assert all(orjson.dumps(i) == first[i["event_id"]] for i in valid)  # re-sends are exact copies


# --- stories -------------------------------------------------------------------------------------


def test_channels_event_types_and_metrics_cover_the_stories() -> None:
    _, raw = raw_run()
    valid = [i for i in raw if isinstance(i, dict)]
    channels = Counter(i["channel"] for i in valid)
    types = Counter(i["event_type"] for i in valid)
    assert set(channels) >= {"web", "app", "phone", "ivr", "chat", "wechat", "email", "sms", "store",
                             "logistics", "survey", "social"}  # fmt: skip
    assert set(types) >= {
        "page_view", "search", "product_view", "add_to_cart", "checkout_started", "login", "order_placed",
        "payment_completed", "payment_failed", "shipment_dispatched", "delivered", "delivery_delayed",
        "contact_started", "agent_answered", "transferred", "contact_ended", "case_opened", "case_resolved",
        "complaint_filed", "compensation_offered", "survey_response", "review_posted", "social_mention",
        "notification_sent", "return_requested", "refund_issued",
    }  # fmt: skip
    ended = [i["metrics"] for i in valid if i["event_type"] == "contact_ended"]
    assert {m["handled_by"] for m in ended} == {"human", "bot", "none"}
    assert {m["resolved"] for m in ended} == {True, False}
    assert any(m["wait_seconds"] >= 60 for m in ended) and any(m["transfers"] >= 2 for m in ended)
    surveys = [i for i in valid if i["event_type"] == "survey_response"]
    assert any("contact_id" in i.get("context", {}) for i in surveys)
    assert all(i["metrics"]["amount"] > 0 for i in valid if i["event_type"] == "order_placed")


def test_anonymous_sessions_log_in_with_both_identifiers() -> None:
    _, raw = raw_run()
    valid = [i for i in raw if isinstance(i, dict)]
    anonymous = [i for i in valid if "customer_id" not in i["identity"] and "anonymous_id" in i["identity"]]
    logins = [i for i in valid if i["event_type"] == "login" and "anonymous_id" in i["identity"]]
    assert anonymous and logins
    assert all("customer_id" in i["identity"] for i in logins)
    cookies = {i["identity"]["anonymous_id"] for i in logins}
    assert any(i["identity"]["anonymous_id"] in cookies for i in anonymous)


def test_phones_and_emails_are_spelled_many_ways_but_normalise_to_one_per_customer() -> None:
    _, raw = raw_run()
    phones: dict[str, set[str]] = {}
    emails: dict[str, set[str]] = {}
    for item in raw:
        if isinstance(item, dict) and "customer_id" in item["identity"]:
            ident = item["identity"]
            if "phone" in ident:
                phones.setdefault(ident["customer_id"], set()).add(ident["phone"])
            if "email" in ident:
                emails.setdefault(ident["customer_id"], set()).add(ident["email"])
    assert any(len(spellings) >= 3 for spellings in phones.values())
    assert any(len(spellings) >= 2 for spellings in emails.values())
    owner: dict[str, str] = {}
    for cid, spellings in phones.items():
        assert len({normalize_phone(s, "CN") for s in spellings}) == 1
        e164 = normalize_phone(next(iter(spellings)), "CN")
        assert owner.setdefault(e164, cid) == cid  # nobody shares a phone number
    for spellings in emails.values():
        assert len({normalize_email(s) for s in spellings}) == 1
    every = {p for s in phones.values() for p in s}
    assert any(p.startswith("+86 ") for p in every) and any("-" in p for p in every)
    assert any(p.isdigit() for p in every)


@pytest.mark.parametrize("region", ["US", "GB", "SG"])
def test_other_regions_get_their_own_national_numbers(region: str) -> None:
    cfg = config(events=1500, region=region)
    items = list(generate(cfg))
    assert run_ingest(items, cfg, region).rejected == []
    numbers = {i["identity"]["phone"] for i in items if "phone" in i["identity"]}
    code = {"US": "+1", "GB": "+44", "SG": "+65"}[region]
    assert numbers and all(normalize_phone(n, region).startswith(code) for n in numbers)


def _stitched(records: list[TouchpointRecord]) -> Cluster:
    cluster = Cluster(policy(), partitions=4)
    cluster.feed([r._replace(key=r.customer_id or "~" + r.identifiers[0]) for r in records])
    cluster.run(random.Random(0))
    return cluster


def test_stories_give_high_churn_customers_and_mostly_content_ones() -> None:
    cfg = config(events=8000, customers=800, days=60.0, invalid_share=0.0)
    result = run_ingest(list(generate(cfg)), cfg)
    cluster = _stitched(result.records)
    p = policy()
    known = {k: s.counters(p) for k, s in cluster.customers().items() if not k.startswith("~")}
    levels = Counter(c.level for c in known.values())
    assert set(levels) == {"none", "low", "elevated", "high"}
    assert 0.05 * len(known) < levels["high"] < 0.35 * len(known)
    assert levels["none"] + levels["low"] > 0.5 * len(known)
    assert sum(1 for c in known.values() if c.satisfied > 0 and c.dissatisfied == 0) > 0.2 * len(known)
    alerted = {a.customer_key for out in cluster.outputs for a in out.alerts}
    assert levels["high"] <= len(alerted)
    # Three or more distinct episodes each: the alert names them.
    alert = next(a for out in cluster.outputs for a in out.alerts)
    assert len(set(alert.experience_keys)) >= 3


def test_unhappy_share_drives_churn_risk() -> None:
    def high(share: float) -> int:
        cfg = config(events=5000, customers=500, days=60.0, invalid_share=0.0, unhappy_share=share)
        cluster = _stitched(run_ingest(list(generate(cfg)), cfg).records)
        p = policy()
        return sum(1 for s in cluster.customers().values() if s.counters(p).level == "high")

    assert high(0.0) < high(0.3) / 4


def test_a_bad_call_is_one_experience() -> None:
    # Every touchpoint of a case carries its case id: waits, transfers and surveys fold into one episode.
    _, raw = raw_run()
    by_case: dict[str, set[str]] = {}
    for item in raw:
        if isinstance(item, dict) and item.get("context", {}).get("case_id"):
            by_case.setdefault(item["context"]["case_id"], set()).add(item["event_type"])
    assert by_case
    assert any({"contact_started", "contact_ended", "case_opened"} <= types for types in by_case.values())


# --- messages and produce ------------------------------------------------------------------------


def test_single_messages_are_keyed_by_customer_id() -> None:
    items: list[Any] = [
        {"event_id": "a", "identity": {"customer_id": "C1"}},
        {"event_id": "b", "identity": {"phone": "13800138000"}},
        b"not json",
    ]
    assert list(messages(items, 1)) == [
        (b"C1", orjson.dumps(items[0]), 1),
        (None, orjson.dumps(items[1]), 1),
        (None, b"not json", 1),
    ]


def test_batches_hold_up_to_batch_size_and_raw_bytes_go_alone() -> None:
    cfg = config(events=2500, invalid_share=0.02)
    raw = list(generate_raw(cfg))
    out = list(messages(raw, 100))
    assert sum(n for _, _, n in out) == len(raw)
    batches = [(v, n) for _, v, n in out if v.startswith(b'{"events":')]
    assert all(n <= 100 for _, n in batches)
    assert sum(n for _, n in batches) == cfg.valid_count
    alone = {v for _, v, _ in out if not v.startswith(b'{"events":')}
    assert alone == {i for i in raw if isinstance(i, bytes)}
    decoded = [e for v, _ in batches for e in orjson.loads(v)["events"]]
    assert decoded == [i for i in raw if isinstance(i, dict)]
    result = run_ingest([v for v, _ in batches], cfg)
    assert result.rejected == [] and len(result.records) == cfg.valid_count


@pytest.mark.parametrize("size", [0, 1001])
def test_batch_size_outside_contract_is_refused(size: int) -> None:
    with pytest.raises(ValueError, match="batch_size"):
        messages([], size)
    with pytest.raises(ValueError, match="batch_size"):
        produce(Settings(), [], batch_size=size)  # before any connection attempt


def test_pacer_keeps_the_average_rate() -> None:
    now = [100.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    pacer = Pacer(1000.0, clock=lambda: now[0], sleep=sleep)
    for _ in range(50):
        pacer.took(100)
    assert now[0] - 100.0 == pytest.approx(5.0)
    unpaced = Pacer(None, clock=lambda: now[0], sleep=sleep)
    unpaced.took(10**9)
    assert len(slept) == 50
    with pytest.raises(ValueError):
        Pacer(0.0)


class FakeFuture:
    def add_errback(self, fn: Any) -> FakeFuture:
        return self


class FakeProducer:
    instances: list[FakeProducer] = []

    def __init__(self, **config: Any) -> None:
        self.config = config
        self.sent: list[tuple[str, bytes, bytes | None]] = []
        self.flushed = self.closed = False
        FakeProducer.instances.append(self)

    def send(self, topic: str, value: bytes, key: bytes | None = None) -> FakeFuture:
        self.sent.append((topic, value, key))
        return FakeFuture()

    def flush(self) -> None:
        self.flushed = True

    def close(self, timeout: float | None = None) -> None:
        self.closed = True


def test_produce_sends_batches_flushes_and_closes(monkeypatch: pytest.MonkeyPatch) -> None:
    import kafka

    monkeypatch.setattr(kafka, "KafkaProducer", FakeProducer)
    cfg = config(events=1200)
    stats = produce(Settings(kafka_bootstrap="127.0.0.1:1"), generate_raw(cfg), batch_size=500, topic="t")
    producer = FakeProducer.instances[-1]
    assert producer.config["bootstrap_servers"] == "127.0.0.1:1"
    assert producer.flushed and producer.closed
    assert stats.sent_events == 1200 and stats.sent_messages == len(producer.sent)
    assert stats.sent_messages == 3 + cfg.invalid_count
    assert {topic for topic, _, _ in producer.sent} == {"t"}
    assert stats.events_per_second > 0


def test_unreachable_broker_is_a_stack_error_naming_the_address(monkeypatch: pytest.MonkeyPatch) -> None:
    import kafka
    from kafka.errors import KafkaTimeoutError

    def refuse(**config: Any) -> None:
        raise KafkaTimeoutError("Unable to bootstrap")

    monkeypatch.setattr(kafka, "KafkaProducer", refuse)
    with pytest.raises(StackError, match=r"127\.0\.0\.1:1"):
        produce(Settings(kafka_bootstrap="127.0.0.1:1"), [], batch_size=1)
