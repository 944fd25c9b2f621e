"""Reference model of the rows stage 2 builds from records and journeys (now built by core/src/stage.rs)."""

from __future__ import annotations

import orjson

from schemas.records import TouchpointRecord
from schemas.rows import JourneyRow, TouchpointRow
from tests.reference.customer import Applied
from tests.reference.journeys import Journey, row_id

__all__ = ["retirement_row", "touchpoint_row"]


def touchpoint_row(rec: TouchpointRecord, key: str, applied: Applied | None, signals: list[str]) -> TouchpointRow:
    """The `touchpoints` row: stitched key, experience, journey, signals, hashed identifiers."""
    ids = {}
    for identifier in rec.identifiers:
        kind, _, value = identifier.partition(":")
        ids[kind] = value
    return TouchpointRow(
        event_id=rec.event_id,
        customer_key=key,
        channel=rec.channel,
        event_type=rec.event_type,
        occurred_at=rec.occurred_ms // 1000,
        occurred_ms=rec.occurred_ms,
        received_at=rec.received_ms // 1000,
        source=rec.source,
        experience_key=applied.experience_key if applied else "",
        journey_id=row_id(key, applied.journey_id) if applied and applied.journey_id else "",
        signals=signals,
        customer_id=rec.customer_id or "",
        anonymous_id=ids.get("anon", ""),
        device_id=ids.get("device", ""),
        phone_hash=ids.get("phone", ""),
        email_hash=ids.get("email", ""),
        wechat_openid=ids.get("wechat", ""),
        order_id=rec.order_id or "",
        case_id=rec.case_id or "",
        contact_id=rec.contact_id or "",
        session_id=rec.session_id or "",
        agent_id=rec.agent_id or "",
        store_id=rec.store_id or "",
        wait_seconds=rec.wait_seconds,
        transfers=rec.transfers,
        handled_by=rec.handled_by or "",
        resolved=None if rec.resolved is None else int(rec.resolved),
        csat=rec.csat,
        nps=rec.nps,
        ces=rec.ces,
        rating=rec.rating,
        sentiment=rec.sentiment,
        amount=rec.amount,
        currency=rec.currency or "",
        attributes=orjson.dumps(rec.attributes).decode() if rec.attributes else "{}",
        schema_version=1,
    )


def retirement_row(key: str, journey: Journey, into: str, version: int, now_ms: int) -> JourneyRow:
    """A journey stored under an id it no longer has: zero touchpoints and a pointer (`merged_into`)."""
    return JourneyRow(
        journey_id=row_id(key, journey.jid),
        customer_key=key,
        journey_type=journey.jtype,
        status="abandoned",
        started_at=journey.started // 1000,
        ended_at=journey.last // 1000,
        last_event_at=journey.last // 1000,
        touchpoints=0,
        channels=[],
        dissatisfying=0,
        merged_into=into,
        version=version,
        updated_at=now_ms // 1000,
    )
