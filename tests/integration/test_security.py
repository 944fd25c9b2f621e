"""Security on the real stack: no raw phone or e-mail in any String column of any table; least privilege."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from clickhouse_driver import Client

from cxj.settings import Settings
from sinks.clickhouse import ClickHouse
from tests.factories import touchpoint
from tests.integration.pipeline_support import consume_all, query, send_and_drain, string_columns

pytestmark = pytest.mark.integration


def _pii_traffic(run: str) -> tuple[list[dict[str, object] | bytes], list[str]]:
    """Valid and invalid touchpoints carrying phones and e-mails in every place a feeder might put them."""
    rng = random.Random(run)
    digits = f"{rng.randrange(10**8):08d}"
    phone_spellings = [f"139{digits}", f"+86 139 {digits[:4]} {digits[4:]}", f"139-{digits[:4]}-{digits[4:]}"]
    email = f"pii.{run}@example.com"
    now = datetime.now(UTC) - timedelta(hours=1)
    valid = [
        touchpoint("login", channel="app", at=now, identity={"customer_id": f"P-{run}", "phone": phone_spellings[0],
                                                              "email": f"  {email.upper()} "}),
        touchpoint("contact_ended", channel="phone", at=now, identity={"phone": phone_spellings[1]},
                   context={"contact_id": f"k-{run}"}, metrics={"wait_seconds": 300, "resolved": False,
                                                                 "handled_by": "human", "transfers": 3},
                   attributes={"note": f"call back on {phone_spellings[2]} or {email}"}),
        touchpoint("survey_response", channel="email", at=now, identity={"email": email},
                   context={"contact_id": f"k-{run}"}, metrics={"csat": 1}),
    ]  # fmt: skip
    invalid: list[dict[str, object] | bytes] = [
        touchpoint(identity={"phone": phone_spellings[1], "email": email}, metrics={"csat": 11}),  # invalid_field
        orjson.dumps(touchpoint(identity={"phone": int(phone_spellings[0]), "email": email})),  # number phone
        f'{{"broken": "{email}", "phone": "{phone_spellings[2]}"'.encode(),  # invalid_json
    ]
    needles = [f"139{digits}", f"{digits[:4]} {digits[4:]}", f"{digits[:4]}-{digits[4:]}", email, email.upper()]
    return [*valid, *invalid], needles


def test_no_raw_phone_or_email_in_any_string_column(pipeline: Settings) -> None:
    run = uuid.uuid4().hex[:10]
    payloads, needles = _pii_traffic(run)
    send_and_drain(pipeline, payloads)
    resolved = "SELECT count() FROM {db}.touchpoints_resolved WHERE customer_key = %(k)s"
    assert query(pipeline, resolved, {"k": f"P-{run}"})[0][0] == 3  # phone and e-mail linked by their hashes
    scanned = 0
    for table, column in string_columns(pipeline):
        for needle in needles:
            found = query(pipeline, f"SELECT count() FROM {{db}}.{table} WHERE positionCaseInsensitive("
                          f"toString({column}), %(n)s) > 0", {"n": needle})  # fmt: skip
            assert found == [(0,)], f"raw PII {needle!r} stored in {table}.{column}"
        scanned += 1
    assert scanned >= 40  # every String column of every table, not a sample
    # The dead-letter rows exist (so their raw column was really scanned) ...
    assert query(pipeline, "SELECT count() FROM {db}.dead_letters WHERE received_at > now() - 600 "
                 "AND (raw LIKE '%<phone>%' OR raw LIKE '%<email>%')")[0][0] >= 3  # fmt: skip
    # ... and internal topics carry hashes only; the DLQ topic keeps the payload for replay (see README).
    for topic in ("cx.internal.stitch", "cx.internal.claims", "cx.identity.links", "cx.churn.alerts",
                  "cx.internal.state"):  # fmt: skip
        for message in consume_all(pipeline, topic, timeout_ms=1500):
            blob = (message.value or b"").lower()
            assert not any(n.lower().encode() in blob for n in needles), topic


def test_clickhouse_users_have_least_privilege(stack: Settings) -> None:
    bi = stack.clickhouse_bi
    reader = Client(bi.host, port=bi.port, user=bi.user, password=bi.password.get_secret_value(),
                    database=bi.database)  # fmt: skip
    assert reader.execute("SELECT count() FROM system.one") == [(1,)]
    for statement in ("INSERT INTO dead_letters (reason) VALUES", "DROP TABLE dead_letters",
                      "CREATE TABLE x (a UInt8) ENGINE = Memory"):  # fmt: skip
        with pytest.raises(Exception, match=r"Code: 164|readonly"):
            reader.execute(statement, [{"reason": "x"}] if statement.startswith("INSERT") else None)
    writer = ClickHouse(stack.clickhouse)
    with pytest.raises(Exception, match=r"291|Access denied"):
        writer.execute("CREATE DATABASE somewhere_else")
    with pytest.raises(Exception, match=r"194|516|password"):
        Client(bi.host, port=bi.port, user="default", password="").execute("SELECT 1")
