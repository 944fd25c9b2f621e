"""What the native core checks is the pydantic contract's (schemas/): the same channels, fields, patterns,
size limits and journey types. The core keeps its own copies (it runs without Python objects); this test
fails the moment one side changes without the other."""

from __future__ import annotations

import typing

import cx_core

from schemas import touchpoint
from schemas.records import TouchpointRecord
from schemas.rules import MetricField
from streams.domain.journeys import JOURNEY_TYPES


def _pattern(annotated: object) -> str:
    for meta in typing.get_args(annotated)[1:]:
        if getattr(meta, "pattern", None):
            return str(meta.pattern)
    raise AssertionError(f"no pattern on {annotated}")


def test_the_core_checks_the_contracts_fields_and_values() -> None:
    assert tuple(cx_core.CHANNELS) == touchpoint.CHANNELS
    assert tuple(cx_core.IDENTITY_FIELDS) == touchpoint.IDENTITY_FIELDS
    assert list(cx_core.CONTEXT_FIELDS) == list(typing.get_type_hints(touchpoint.Context))
    assert list(cx_core.METRIC_FIELDS) == list(typing.get_type_hints(touchpoint.Metrics))
    assert list(cx_core.RULE_FIELDS) == list(typing.get_args(MetricField))
    # The record's metric columns are the rule fields in the same order (the core reads them by position).
    at = TouchpointRecord._fields.index("wait_seconds")
    assert list(TouchpointRecord._fields[at : at + len(cx_core.METRIC_FIELDS)]) == list(cx_core.METRIC_FIELDS)
    assert tuple(cx_core.JOURNEY_TYPES) == JOURNEY_TYPES
    assert cx_core.SIZE_LIMITS == (touchpoint.MAX_EVENT_BYTES, touchpoint.MAX_BATCH_EVENTS, touchpoint.MAX_BATCH_BYTES)


def test_the_core_uses_the_models_patterns() -> None:
    rfc3339, event_type, currency = cx_core.PATTERNS
    assert rfc3339 == _pattern(touchpoint.Rfc3339)
    assert event_type == touchpoint.EVENT_TYPE_PATTERN
    hints = typing.get_type_hints(touchpoint.Metrics, include_extras=True)
    assert currency == _pattern(typing.get_args(hints["currency"])[0])
