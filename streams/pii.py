"""Phone and e-mail normalisation, keyed hashing, and junk-identifier detection."""

from __future__ import annotations

import hmac
import re
from functools import lru_cache
from typing import Final

import phonenumbers

__all__ = ["hash_pii", "is_junk", "normalize_email", "normalize_phone", "redact"]

_EMAIL: Final = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,253}\.[^@\s.]{2,63}$")
# Only zeros and separators: "0", "0000", "00000000-0000-0000-0000-000000000000".
_ALL_ZEROS: Final = re.compile(r"^[0\s\-_.:]+$")


def is_junk(value: str, blocklist: frozenset[str]) -> bool:
    """Placeholder identifiers that must never link anyone (`null`, `0`, `-1`, all zeros …)."""
    v = value.strip().lower()
    return not v or v in blocklist or bool(_ALL_ZEROS.match(v))


@lru_cache(maxsize=262_144)
def normalize_phone(raw: str, region: str) -> str:
    """E.164 form of a phone number, read in `region` unless it carries a country code.

    >>> normalize_phone("138 0013 8000", "CN")
    '+8613800138000'
    """
    try:
        number = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException as exc:
        raise ValueError("not a phone number") from exc
    if not phonenumbers.is_possible_number(number):
        raise ValueError("not a possible phone number for its country")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def normalize_email(raw: str) -> str:
    """Trimmed and lower-cased; raises ValueError when it is not an address at all."""
    email = raw.strip().lower()
    if not _EMAIL.match(email):
        raise ValueError("not an e-mail address")
    return email


def hash_pii(secret: bytes, kind: str, value: str) -> str:
    """HMAC-SHA256 of `kind:value`, hex: the only form PII takes after ingest."""
    return hmac.digest(secret, f"{kind}:{value}".encode(), "sha256").hex()


# What dead letters must not carry: e-mail addresses and phone-number-like digit runs. Runs
# glued to letters, dashes or colons (UUIDs, ids, clock times) and ISO dates are left alone.
_REDACT_EMAIL: Final = re.compile(rb"[A-Za-z0-9._%+\-]{1,64}@[A-Za-z0-9.\-]{1,253}\.[A-Za-z]{2,63}")
_REDACT_PHONE: Final = re.compile(rb"(?<![\w\-])(?<!\w:)\+?\(?\d(?:[ ().\-]{0,2}\d){6,16}(?![\w:])")
_ISO_DATE: Final = re.compile(rb"^\d{4}-\d{2}-\d{2}$")


def _phone_or_keep(match: re.Match[bytes]) -> bytes:
    text = match.group()
    if _ISO_DATE.match(text):
        return text
    # A bare JSON number (`"phone":13800138000`) becomes a string, so the payload stays valid JSON.
    before = match.string[: match.start()].rstrip()[-1:]
    return b'"<phone>"' if before in (b":", b",", b"[") else b"<phone>"


def redact(raw: bytes) -> bytes:
    """Replace e-mail and phone patterns with placeholders (dead letters keep the rest)."""
    return _REDACT_PHONE.sub(_phone_or_keep, _REDACT_EMAIL.sub(b"<email>", raw))


_MAYBE_PII: Final = re.compile(r"@|\d{6}|\d[ ().\-]\d")


def redact_text(text: str) -> str:
    """`redact` for free text (touchpoint attributes): feeders must not, but sometimes do, put PII there."""
    if not _MAYBE_PII.search(text):  # most values: no digits run, no '@'
        return text
    return redact(text.encode()).decode()
