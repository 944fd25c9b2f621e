"""PII rules of Contract 1: E.164 phones, normalised e-mails, keyed hashes, junk ids, redaction."""

from __future__ import annotations

import hashlib
import hmac
import re

import pytest
from cx_core import may_hold_pii
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.domain.pii import (
    _MAYBE_PII,
    _redact,
    hash_pii,
    is_junk,
    normalize_email,
    normalize_phone,
    redact,
    redact_label,
    redact_text,
)
from tests.factories import SECRET

BLOCKLIST = frozenset({"null", "undefined", "-1", "n/a"})


@pytest.mark.parametrize(
    ("raw", "region", "e164"),
    [
        ("13800138000", "CN", "+8613800138000"),
        ("138 0013 8000", "CN", "+8613800138000"),
        ("138-0013-8000", "CN", "+8613800138000"),
        ("+86 138 0013 8000", "CN", "+8613800138000"),
        ("008613800138000", "CN", "+8613800138000"),
        ("(010) 6552 9988", "CN", "+861065529988"),
        ("(201) 555-0123", "US", "+12015550123"),
        ("+86 138 0013 8000", "US", "+8613800138000"),  # a country code wins over the region
        ("+44 20 7946 0958", "CN", "+442079460958"),
    ],
)
def test_phone_is_normalised_to_e164_read_in_the_region_unless_it_has_a_country_code(
    raw: str, region: str, e164: str
) -> None:
    assert normalize_phone(raw, region) == e164


@pytest.mark.parametrize("raw", ["", "abc", "12", "call me", "+86 1"])
def test_what_is_not_a_phone_number_raises_value_error(raw: str) -> None:
    with pytest.raises(ValueError):
        normalize_phone(raw, "CN")


@pytest.mark.parametrize(
    "raw", ["alice@example.com", " alice@example.com ", "ALICE@EXAMPLE.COM", "\tAlice@Example.Com\n"]
)
def test_email_is_trimmed_and_lower_cased(raw: str) -> None:
    assert normalize_email(raw) == "alice@example.com"


@pytest.mark.parametrize("raw", ["", "alice", "alice@", "@example.com", "alice@example", "a b@example.com", "a@@b.cn"])
def test_what_is_not_an_email_address_raises_value_error(raw: str) -> None:
    with pytest.raises(ValueError):
        normalize_email(raw)


def test_hash_is_hmac_sha256_of_the_typed_value_under_the_secret() -> None:
    expected = hmac.new(SECRET, b"phone:+8613800138000", hashlib.sha256).hexdigest()
    assert hash_pii(SECRET, "phone", "+8613800138000") == expected


def test_hash_is_deterministic_and_hides_the_value() -> None:
    digest = hash_pii(SECRET, "email", "alice@example.com")
    assert digest == hash_pii(SECRET, "email", "alice@example.com")
    assert len(digest) == 64 and set(digest) <= set("0123456789abcdef")
    assert "alice" not in digest


@pytest.mark.parametrize(
    ("secret", "kind", "value"),
    [
        (b"another-secret-0123456789", "phone", "+8613800138000"),  # other key
        (SECRET, "email", "+8613800138000"),  # same text, other identifier type
        (SECRET, "phone", "+8613800138001"),  # other number
    ],
)
def test_hash_differs_with_the_secret_the_kind_or_the_value(secret: bytes, kind: str, value: str) -> None:
    assert hash_pii(secret, kind, value) != hash_pii(SECRET, "phone", "+8613800138000")


@pytest.mark.parametrize(
    "value",
    [
        "",
        "   ",
        "0",
        "0000",
        "00000000",
        "00000000-0000-0000-0000-000000000000",
        "0.0",
        "null",
        "NULL",
        " Null ",
        "undefined",
        "-1",
        "N/A",
    ],
)
def test_placeholders_are_junk(value: str) -> None:
    assert is_junk(value, BLOCKLIST)


@pytest.mark.parametrize("value", ["C1", "a", "10", "100", "anon-0", "00000001", "nullable", "+8613800138000"])
def test_real_identifiers_are_not_junk(value: str) -> None:
    assert not is_junk(value, BLOCKLIST)


def test_blocklist_is_the_configured_one() -> None:
    assert is_junk("kiosk", frozenset({"kiosk"}))
    assert not is_junk("null", frozenset())
    assert is_junk("0", frozenset())  # all zeros are junk whatever the blocklist says


@pytest.mark.parametrize(
    "text",
    [
        b"call 13800138000 now",
        b"call +86 138 0013 8000 now",
        b"call +86-138-0013-8000 now",
        b"call (010) 6552-9988 now",
        b"call 201.555.0123 now",
        b'{"phone":"13800138000"}',
        b'{"phone": 13800138000}',
        pytest.param(
            b'{"phone":13800138000}',
            id="compact-json-number",
        ),
    ],
)
def test_redact_removes_phone_numbers(text: bytes) -> None:
    digits = re.sub(rb"\D", b"", text)
    out = redact(text)
    assert b"<phone>" in out
    assert digits[-7:] not in out


@pytest.mark.parametrize(
    "text",
    [b"mail alice.smith+cx@example.com now", b'{"email":"Alice@Example.COM"}', b"x@mail.example.cn"],
)
def test_redact_removes_email_addresses(text: bytes) -> None:
    out = redact(text)
    assert b"<email>" in out
    assert b"@" not in out


@pytest.mark.parametrize(
    "text",
    [
        b"2026-11-20",
        b"2026-11-20T10:11:12.123+08:00",
        b"123e4567-e89b-12d3-a456-426614174000",
        b"evt-12345678901",
        b"order:12345678901",
        b"no pii here",
    ],
    ids=["iso-date", "timestamp", "uuid", "event-id", "prefixed-id", "plain"],
)
def test_redact_keeps_dates_ids_and_plain_text(text: bytes) -> None:
    assert redact(text) == text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("call me at 138-0013-8000", "call me at <phone>"),
        ("write to Jane.Doe@Example.com please", "write to <email> please"),
        ("vip tier 3", "vip tier 3"),
        ("order 12345", "order 12345"),
        ("2026-11-20", "2026-11-20"),
    ],
)
def test_redact_text_removes_pii_from_free_text_and_keeps_the_rest(text: str, expected: str) -> None:
    assert redact_text(text) == expected


def test_attributes_never_carry_raw_phone_or_email_into_records() -> None:
    from tests.factories import record

    rec = record(attributes={"note": "cb +86 138 0013 8000 / jane@example.com", "tier": "gold"})
    assert rec.attributes == {"note": "cb <phone> / <email>", "tier": "gold"}


# Text of the characters the patterns turn on: digits of several scripts, separators, '@', letters, escapes.
_PII_ALPHABET = st.sampled_from([*"0123456789", "\uff11", "\u0663", "\u096a", *" ().-+_:@\\", "\u00a0", "\u2013",
                                 "\u3000", "\uff0d", *"abcxyzABC", "é", "电", "\n", "u", "\ud800"])  # fmt: skip


@settings(max_examples=1500, deadline=None)
@given(text=st.text(_PII_ALPHABET, max_size=40) | st.text(max_size=40))
def test_the_core_s_prefilter_never_skips_text_with_pii_in_it(text: str) -> None:
    """`may_hold_pii` False means no redaction would change the text (so redact_text may skip the patterns)."""
    if not may_hold_pii(text):
        assert _redact(text) == text
        assert redact_label(text, "CN") == text
        assert _MAYBE_PII.search(text) is None or text.isascii()


# One person's phone and e-mail as different feeds write them, and other people's.
_SEEN_AGAIN = ["+86 138 0013 8000", "138-0013-8000", " 13800138000 ", "+8613800138000", "139 0013 8001",
               "Jane@Example.com", " jane@example.com", "bob@example.org", "+1 650 253 0000"]  # fmt: skip


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from(_SEEN_AGAIN), min_size=1, max_size=12))
def test_an_identifier_seen_before_hashes_as_the_rules_say(values: list[str]) -> None:
    """The core remembers identifiers it normalised (by a keyed digest): a repeat gets the same hash."""
    from tests.factories import record

    for raw in values:
        kind = "email" if "@" in raw else "phone"
        normal = normalize_email(raw) if kind == "email" else normalize_phone(raw.strip(), "CN")
        rec = record(identity={kind: raw})
        assert rec.identifiers == (f"{kind}:{hash_pii(SECRET, kind, normal)}",)
