"""Phone and e-mail normalisation, keyed hashing, and junk-identifier detection."""

from __future__ import annotations

import hmac
import re
import unicodedata
from functools import lru_cache
from typing import Final

import phonenumbers
from cx_core import may_hold_pii

__all__ = [
    "has_control",
    "hash_pii",
    "is_blank",
    "is_junk",
    "normalize_email",
    "normalize_phone",
    "pii_in_id",
    "redact",
    "redact_label",
    "redact_text",
]

_EMAIL: Final = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,253}\.[^@\s.]{2,63}$")
# Only zeros and separators: "0", "0000", "00000000-0000-0000-0000-000000000000".
_ALL_ZEROS: Final = re.compile(r"^[0\s\-_.:]+$")
_ZERO_START: Final = frozenset("0-_.:")


# Characters that show nothing on their own: format characters (zero-width space, BOM, soft hyphen),
# controls, lone combining marks, private use, unassigned.
_INVISIBLE_CATEGORIES: Final = frozenset({"Cc", "Cf", "Co", "Cn", "Mn", "Me", "Zl", "Zp", "Zs"})


def is_blank(value: str) -> bool:
    """Nothing visible: empty, whitespace, or only invisible characters such as U+200B."""
    if value.isprintable():  # the common case: printable and non-empty after strip means visible
        return not value.strip()
    return all(c.isspace() or unicodedata.category(c) in _INVISIBLE_CATEGORIES for c in value)


def has_control(value: str) -> bool:
    """Holds a control character (NUL, tab, newline, C1 controls): never part of an id."""
    return not value.isprintable() and any(unicodedata.category(c) == "Cc" for c in value)


def is_junk(value: str, blocklist: frozenset[str]) -> bool:
    """Placeholder identifiers that must never link anyone (`null`, `0`, `-1`, all zeros, invisible …)."""
    v = value.strip().lower()
    # Stripped, an all-zeros value starts with one of these: most identifiers skip the pattern.
    return (
        not v
        or v in blocklist
        or (v[0] in _ZERO_START and _ALL_ZEROS.match(v) is not None)
        or (not v.isprintable() and is_blank(v))
    )


def normalize_phone(raw: str, region: str) -> str:
    """E.164 form of a phone number, read in `region` unless it carries a country code.

    Not cached: a cache here would hold raw numbers. The worker's ingest remembers what it normalised
    by keyed digests of the raw values instead (core/src/ingest.rs, `Known`).

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
    """HMAC-SHA256 of `kind:value`, hex: the only form PII takes after ingest (not cached: see above)."""
    return hmac.digest(secret, f"{kind}:{value}".encode(), "sha256").hex()


# What dead letters must not carry: e-mail addresses and phone-number-like digit runs. Runs
# glued to letters, dashes or colons (UUIDs, ids, clock times) and ISO dates are left alone.
# Unicode-aware, because ingest accepts (and hashes) phones written in full-width or Arabic-Indic
# digits and addresses with non-ASCII letters: `\d` is any decimal digit, an address part any
# run of characters that cannot delimit it in JSON or prose. Letters that glue a run to an id are
# ASCII only, so "电话13800138000" is still redacted.
_ADDRESS_PART: Final = r"[^\s@\"'<>(),;:\\\[\]{}]"
# An address is found from its '@' (a fast literal scan), then its local part is looked for just before.
_AT_DOMAIN: Final = re.compile(rf"@{_ADDRESS_PART}{{1,253}}\.[^\W\d_]{{2,63}}")
_LOCAL_PART: Final = re.compile(rf"{_ADDRESS_PART}{{1,64}}\Z")
_PHONE_SEP: Final = r"[ ().\-\u00a0\u2010-\u2015\u2212\u3000\uff08\uff09\uff0d\uff0e]"
# A JSON escape before a run (`"\t13800138000"`, `"\u3000138 0013 8000"`) does not glue it to a word.
# The leading lookahead names the characters a match can start with: without it every position
# of the text runs the lookbehinds (measured: 5.6 ms on a 73 KB transcript, 1.7 ms with it).
_REDACT_PHONE: Final = re.compile(
    r"(?=[+\uff0b(\uff08\d])(?:(?<![A-Za-z_\d\-])|(?<=\\[bfnrt])|(?<=\\u[0-9a-fA-F]{4}))"
    rf"(?<![A-Za-z_\d]:)[+\uff0b]?[(\uff08]?\d(?:{_PHONE_SEP}{{0,2}}\d){{6,16}}(?![A-Za-z_\d:])"
)
_ISO_DATE: Final = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _phone_or_keep(match: re.Match[str]) -> str:
    text = match.group()
    if _ISO_DATE.match(text):
        return text
    # A bare JSON number (`"phone":13800138000`) becomes a string, so the payload stays valid JSON.
    # Only a few characters back: slicing the whole prefix per match would be quadratic.
    before = match.string[max(0, match.start() - 16) : match.start()].rstrip()[-1:]
    return '"<phone>"' if before in (":", ",", "[") else "<phone>"


def _redact_emails(text: str) -> str:
    out, done = [], 0
    for at in _AT_DOMAIN.finditer(text):
        local = _LOCAL_PART.search(text, max(done, at.start() - 64), at.start())
        if local is not None:
            start = local.start()
            if text[start - 1 : start] == "\\":  # keep a JSON escape (`\n`, `\u00e9`): the payload stays JSON
                start = min(start + (5 if text[start] == "u" else 1), at.start())
            out += [text[done:start], "<email>"]
            done = at.end()
    return "".join(out) + text[done:]


def _redact(text: str) -> str:
    return _REDACT_PHONE.sub(_phone_or_keep, _redact_emails(text) if "@" in text else text)


def redact(raw: bytes) -> bytes:
    """Replace e-mail and phone patterns with placeholders (dead letters keep the rest, bytes as they were)."""
    return _redact(raw.decode("utf-8", "surrogateescape")).encode("utf-8", "surrogateescape")


_MAYBE_PII: Final = re.compile(rf"@|\d{{6}}|\d{_PHONE_SEP}{{1,2}}\d")


def redact_text(text: str) -> str:
    """`redact` for free text (touchpoint attributes): feeders must not, but sometimes do, put PII there."""
    # Most values hold no digit run and no '@': the core says so at memory speed (Python's `re` took 4 ms
    # for the 70 KB of a transcript stuffed in a touchpoint).
    if not may_hold_pii(text):
        return text
    return _redact(text)


# --- PII used as an id (issue 11): replaced by its keyed hash unless a setting allows it -------------

# A whole value written the way people write a phone number: digits with the usual separators.
_PHONE_SHAPE: Final = re.compile(rf"(?:[(\uff08][+\uff0b]|[+\uff0b]?[(\uff08]?)\d(?:{_PHONE_SEP}{{0,2}}\d){{6,16}}")
_MOBILE_TYPES: Final = frozenset(
    {phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE}
)


@lru_cache(maxsize=65_536)
def phone_in_id(value: str, region: str, strict: bool = False) -> str | None:
    """E.164 when the whole value is a phone number as people write one, else None.

    Ids are often numeric, so a bare run of digits counts only when it is a valid mobile number of
    `region` (CN: 11 digits from 13-19) or starts with a trunk or international prefix (0…); a value
    written with `+` or separators counts when it is a possible number (`strict`: a valid one, for runs
    found inside longer text, where addresses and ports look like numbers). ISO dates never count.
    """
    v = value.strip()
    if _PHONE_SHAPE.fullmatch(v) is None or _ISO_DATE.match(v):
        return None
    try:
        number = phonenumbers.parse(v, region)
    except phonenumbers.NumberParseException:
        return None
    if v.isdecimal() and not v.startswith("0"):
        ok = phonenumbers.is_valid_number(number) and phonenumbers.number_type(number) in _MOBILE_TYPES
    elif strict:
        ok = phonenumbers.is_valid_number(number)
    else:
        ok = phonenumbers.is_possible_number(number)
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164) if ok else None


def _phone_in(text: str, region: str) -> bool:
    """Does `text` hold, among other characters, a run that is a phone number by `phone_in_id`'s rule?"""
    if not _MAYBE_PII.search(text):
        return False
    return any(phone_in_id(m.group(), region, True) is not None for m in _REDACT_PHONE.finditer(text))


def pii_in_id(value: str, region: str) -> tuple[str, str] | None:
    """What an id field carries when it is (or holds) a phone number or e-mail address.

    `("phone", e164)` or `("email", address)` for a whole value (hashed like the identity field of that
    kind, so the same person keeps one hash), `("pii", value)` for PII inside a longer id; None otherwise.
    """
    v = value.strip()
    if not v:
        return None
    if "@" in v:
        try:
            return "email", normalize_email(v)
        except ValueError:
            pass
        if _redact_emails(v) != v:  # an address inside a longer id
            return "pii", v
    if v[:1].isdecimal() or v[:1] in "+(\uff0b\uff08":
        e164 = phone_in_id(v, region)
        if e164 is not None:
            return "phone", e164
    if _phone_in(v, region):
        return "pii", v
    return None


def redact_label(text: str, region: str) -> str:
    """A label such as `source` with the phones and e-mails in it replaced by `<phone>` / `<email>`.

    Stricter about digits than `redact_text`: a bare run of digits is a phone only by `phone_in_id`'s rule,
    so version numbers and counters in a label stay readable.
    """
    if not may_hold_pii(text):
        return text
    if "@" in text:
        text = _redact_emails(text)

    def phone(match: re.Match[str]) -> str:
        return "<phone>" if phone_in_id(match.group(), region, True) is not None else match.group()

    return _REDACT_PHONE.sub(phone, text)
