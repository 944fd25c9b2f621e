"""Forgetting a customer (`cxj forget`), the pure parts: the graph, the partition state, the codec, the plan."""

from __future__ import annotations

import re

import pytest

from cxj.erasure import ErasurePlan, delete_statement, deletions, subject_rows, text_pattern
from schemas.errors import ConfigError
from schemas.records import ForgetRequest, LinkClaim
from schemas.settings import Settings
from sinks.customers import identifier_of
from streams.domain.codec import Item, decode_claims, encode_claims, encode_forget
from streams.domain.identity import IdentityGraph
from streams.domain.processor import PartitionState
from tests.factories import SECRET, T0, days, policy, record
from tests.reference.codec import Forward, decode_entry

NOW = 2_000_000_000_000


def customer_graph() -> IdentityGraph:
    """C1 with an anonymous visitor and a device merged in; C2 a stranger with its own phone."""
    graph = IdentityGraph()
    graph.apply(LinkClaim(None, ("anon:a1", "device:d1"), 1_000, "e1"))
    graph.apply(LinkClaim("C1", ("anon:a1", "phone:h1"), 2_000, "e2"))
    graph.apply(LinkClaim("C2", ("phone:h2",), 3_000, "e3"))
    return graph


# --- the identity graph ----------------------------------------------------------------------


def test_forgetting_a_customer_unlinks_every_identifier_and_names_every_key_merged_into_it() -> None:
    graph = customer_graph()
    erased = graph.forget("C1")
    assert erased.key == "C1"
    assert erased.identifiers == ("anon:a1", "device:d1", "phone:h1")
    assert erased.keys == ("C1", "~anon:a1", "~device:d1", "~phone:h1")
    assert all(graph.mapping.get(i) is None for i in erased.identifiers)
    assert "C1" not in graph.members
    assert graph.key_of("anon:a1") == "~anon:a1"  # a returning visitor is a new, anonymous customer
    assert graph.key_of("phone:h2") == "C2"  # the stranger is untouched


def test_an_anonymous_key_merged_into_a_customer_forgets_the_whole_customer() -> None:
    graph = customer_graph()
    assert graph.forget("~device:d1").key == "C1"
    assert graph.mapping == {"phone:h2": "C2"}


def test_forgetting_an_unknown_key_erases_only_that_key_and_is_idempotent() -> None:
    graph = customer_graph()
    assert graph.forget("C9").keys == ("C9",)
    once = dict(graph.mapping)
    graph.forget("C1")
    again = graph.forget("C1")
    assert again.identifiers == () and again.keys == ("C1",)
    assert graph.mapping == {k: v for k, v in once.items() if v != "C1"}


def test_a_relinked_identifier_after_forgetting_starts_a_new_component() -> None:
    graph = customer_graph()
    graph.forget("C1")
    outcome = graph.apply(LinkClaim("C1", ("phone:h1",), 9_000, "e9"))
    assert [(c.identifier, c.customer_key) for c in outcome.links] == [("phone:h1", "C1")]
    assert graph.members["C1"] == {"phone:h1"}


def test_the_links_topic_with_tombstones_rebuilds_the_same_graph() -> None:
    graph = customer_graph()
    log: list[tuple[str, str | None]] = [(i, k) for i, k in graph.mapping.items()]
    erased = graph.forget("C1")
    log += [(i, None) for i in erased.identifiers]
    rebuilt = IdentityGraph()
    rebuilt.load(log)
    assert rebuilt.mapping == graph.mapping
    assert rebuilt.members == graph.members


# --- the claims topic ------------------------------------------------------------------------


def test_forget_requests_and_link_claims_share_the_claims_topic() -> None:
    request = ForgetRequest("r1", "C1", 5_000)
    claim = LinkClaim("C1", ("anon:a1",), 1_000, "e1")
    assert decode_claims(encode_forget(request)) == [request]
    assert decode_claims(encode_claims([claim])) == [claim]


# --- a stitch partition ----------------------------------------------------------------------


def forget_item(key: str, number: int = 0) -> Item:
    return Item("forget", key, None, "req-1", str(number).encode())


def test_a_forget_item_erases_the_state_writes_a_tombstone_and_acknowledges() -> None:
    ps = PartitionState(3, policy())
    ps.process([Item("tp", "C1", record(key="C1", event_type="complaint_filed", at=T0))], NOW, 0)
    ps.process([Item("tp", "C2", record(key="C2", event_id="x2", at=T0))], NOW, 0)
    out = ps.process([forget_item("C1", 2)], NOW + 1_000, 0)
    assert "C1" not in ps.data and "C2" in ps.data
    assert out.changed == {"C1": None}  # the changelog tombstone: compaction erases the key
    assert out.erased == 1
    (ack,) = out.rows["erasures"]
    assert (ack.request_id, ack.stage, ack.item, ack.partition, ack.erased) == ("req-1", "state", 2, 3, 1)
    assert "customer_experience" not in out.rows  # nothing rewritten for the forgotten key


def test_a_forgotten_customer_who_comes_back_starts_from_nothing() -> None:
    ps = PartitionState(0, policy())
    strikes = [
        record(key="C1", event_id=f"e{i}", event_type="complaint_filed", context={"case_id": f"K{i}"}, at=T0 + days(i))
        for i in range(3)
    ]
    assert ps.process([Item("tp", "C1", r) for r in strikes], NOW, 0).alerts
    ps.process([forget_item("C1")], NOW, 0)
    out = ps.process([Item("tp", "C1", strikes[0])], NOW, 0)  # even a replayed old event is new now
    (row,) = out.rows["customer_experience"]
    assert row.dissatisfied_90d == 1
    assert not out.alerts


def test_touches_earlier_in_the_same_batch_are_not_written_back_after_the_forget() -> None:
    ps = PartitionState(0, policy())
    out = ps.process([Item("tp", "C1", record(key="C1", at=T0)), forget_item("C1")], NOW, 0)
    assert out.changed == {"C1": None}
    assert "C1" not in ps.data


def test_a_forward_left_by_a_merge_is_erased_too() -> None:
    ps = PartitionState(0, policy())
    ps.process([Item("tp", "~anon:a1", record(key="~anon:a1", identity={"anonymous_id": "a1"}, at=T0))], NOW, 0)
    ps.process([Item("merge", "~anon:a1", None, "C1")], NOW, 0)
    assert isinstance(decode_entry(ps.data["~anon:a1"]), Forward)
    out = ps.process([forget_item("~anon:a1")], NOW, 0)
    assert "~anon:a1" not in ps.data and out.changed == {"~anon:a1": None}
    assert not ps.expire(NOW + 10**9, 0).changed  # the forward's expiry was dropped with it


def test_forgetting_a_key_the_partition_never_held_still_acknowledges() -> None:
    out = PartitionState(0, policy()).process([forget_item("C404")], NOW, 0)
    assert out.erased == 0 and out.rows["erasures"][0].erased == 0


# --- the command's plan ----------------------------------------------------------------------


def settings() -> Settings:
    return Settings(pii_secret=SECRET.decode(), _env_file=None)  # type: ignore[call-arg]


def test_a_raw_phone_or_email_is_hashed_the_way_ingest_hashes_it() -> None:
    rec = record(identity={"phone": "138 0013 8000", "email": " Ann@Example.COM "})
    assert identifier_of("phone:+86 138-0013-8000", settings()) == rec.identifiers[0]
    assert identifier_of("email:ann@example.com", settings()) == rec.identifiers[1]
    assert identifier_of("anon:a1", settings()) == "anon:a1"
    assert identifier_of(rec.identifiers[0], settings()) == rec.identifiers[0]  # already a hash


@pytest.mark.parametrize("bad", ["", "a1", "fax:123", "phone:not a number", "email:nobody", "anon:\x00x", "x" * 600])
def test_a_bad_identifier_is_a_clear_error(bad: str) -> None:
    with pytest.raises(ConfigError):
        identifier_of(bad, settings())


PLAN = ErasurePlan("C1", ("anon:a1", "phone:h1"), ("C1", "~anon:a1", "~device:d1", "~phone:h1"), ("j1",))
REQUEST = "0123456789abcdef0123456789abcdef"


def test_every_table_holding_a_customer_is_deleted_from_by_a_condition_naming_only_the_request() -> None:
    work = deletions(PLAN, REQUEST, "cx")
    assert {t for t, _ in work} == {"touchpoints", "experience_signals", "customer_experience", "churn_alerts",
                                    "journeys", "risk_daily", "journey_funnel", "identity_links",
                                    "identity_overrides", "identity_conflicts", "dead_letters",
                                    "touchpoints_by_customer", "signals_by_customer",
                                    "journeys_by_customer", "alerts_by_customer", "alert_outcomes"}  # fmt: skip
    # What system.mutations and system.query_log will show every user: the request id, never a key or id.
    for table, condition in work:
        statement = delete_statement("cx", table, condition, None)
        assert f"cx.erasure_subjects WHERE request_id = '{REQUEST}'" in statement
        assert not any(value in statement for value in ("C1", "a1", "d1", "h1", "j1")), statement
    assert dict(work)["touchpoints"] == (
        f"customer_key IN (SELECT value FROM cx.erasure_subjects WHERE request_id = '{REQUEST}' AND kind = 'key')"
    )
    with pytest.raises(ValueError, match="32 hex"):
        deletions(PLAN, "x' OR 1 --", "cx")


def test_the_subjects_hold_every_key_identifier_and_journey_of_the_request() -> None:
    # A dead letter names the customer as ingest keys it: its key, or any identifier, also behind a merged key.
    assert PLAN.subjects == ("C1", "anon:a1", "device:d1", "phone:h1", "~anon:a1", "~device:d1", "~phone:h1")
    # Payload text may quote the ids kept as given; phones and e-mails are redacted there, found by hash.
    assert PLAN.spellings == ("C1", "a1", "d1")
    rows = subject_rows(PLAN, REQUEST)
    assert {r[0] for r in rows} == {REQUEST}
    by_kind = {kind: sorted(v for _, k, v in rows if k == kind) for _, kind, _ in rows}
    assert by_kind["key"] == list(PLAN.keys) and by_kind["identifier"] == list(PLAN.identifiers)
    assert by_kind["journey"] == ["j1"] and by_kind["subject"] == list(PLAN.subjects)
    assert by_kind["pattern"] == [text_pattern(PLAN.spellings)]


def _python(pattern: str) -> re.Pattern[str]:
    """The RE2 pattern in Python's syntax (`\\x{2d}` is `\\x2d`), to check what it matches."""
    return re.compile(re.sub(r"\\x\{([0-9a-f]+)\}", lambda m: f"\\x{int(m.group(1), 16):02x}", pattern))


@pytest.mark.parametrize(
    "text",
    [
        '{"customer_id": "C-1"}', '"customer_id": " C-1 "', '"c-1"', '"C\\u002d1"', '"\\u0043\\u002D1"',
        '"\\u0063-1"', '"\\u0020C-1\\t"', "customer_id=C-1&x=2", "'C-1'", "C-1", "[C-1]", '{\\"id\\":\\"C-1\\"}',
    ],
)  # fmt: skip
def test_a_key_is_found_in_payload_text_in_any_case_escaped_and_padded(text: str) -> None:
    assert _python(text_pattern(["C-1"]) or "").search(text), text


@pytest.mark.parametrize(
    "text", ['"C-10"', '"C-1-2"', '"xC-1"', '"C-1.x"', '"C-1@x"', '"C-1\\u002d2"', '"\\u0058C-1"', '"C_1"', "C-"]
)
def test_a_key_is_not_found_inside_a_longer_id(text: str) -> None:
    assert not _python(text_pattern(["C-1"]) or "").search(text), text


def test_any_character_of_a_key_may_be_escaped_and_special_ones_stay_literal() -> None:
    pattern = _python(text_pattern(["a.b*(c)", "ü/\\"]) or "")
    assert pattern.search('"a.b*(c)"') and not pattern.search('"axb*(c)"')
    assert pattern.search('"\\u00fc\\/\\\\"') and pattern.search('"Ü/\\u005c"')
    assert text_pattern(["", "  "]) is None


def test_on_a_cluster_the_local_tables_are_mutated_on_every_node() -> None:
    assert delete_statement("cx", "journeys", "x = 1", None) == "ALTER TABLE cx.journeys DELETE WHERE x = 1"
    assert delete_statement("cx", "journeys", "x = 1", "cx") == (
        "ALTER TABLE cx.journeys_local ON CLUSTER 'cx' DELETE WHERE x = 1"
    )
