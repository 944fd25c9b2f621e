"""Reference model of the signal rules (the Python classifier the native core replaced: core/src/signals.rs)."""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any, Final

from schemas.records import TouchpointRecord
from schemas.rules import DEFAULT_RULES, SignalRules
from streams.domain.signals import Classifier as RuleTable
from streams.domain.signals import Signal

__all__ = ["Classifier", "classify", "experience_key"]

_OPS: Final[dict[str, Callable[[Any, Any], bool]]] = {
    "eq": operator.eq,
    "ne": operator.ne,
    "lt": operator.lt,
    "le": operator.le,
    "gt": operator.gt,
    "ge": operator.ge,
}


_Check = tuple[int, Callable[[Any, Any], bool], Any, bool]


def experience_key(rec: TouchpointRecord) -> str:
    """The episode a touchpoint belongs to: first of case, contact, order, else the event itself."""
    if rec.case_id:
        return f"case:{rec.case_id}"
    if rec.contact_id:
        return f"contact:{rec.contact_id}"
    if rec.order_id:
        return f"order:{rec.order_id}"
    return f"event:{rec.event_id}"


class Classifier:
    """Compiled rules: `classify(record)` returns the stateless signals that fire."""

    def __init__(self, rules: SignalRules = DEFAULT_RULES) -> None:
        table = RuleTable(rules)  # the signals' bits, names and masks, as the pipeline has them
        self.rules = rules
        self.signals = table.signals
        self.repeat_contact = table.repeat_contact
        self.by_name = table.by_name
        self.negative_mask, self.positive_mask = table.negative_mask, table.positive_mask
        self.names = table.names
        fields = TouchpointRecord._fields
        compiled: list[tuple[Signal, frozenset[str] | None, tuple[tuple[_Check, ...], ...]]] = []
        for sig, rule in zip(self.signals, rules.rules, strict=False):
            disjunction = tuple(
                tuple((fields.index(c.field), _OPS[c.op], c.value, c.when_missing) for c in conj)
                for conj in rule.any_of
            )
            types = frozenset(rule.event_types) if rule.event_types is not None else None
            compiled.append((sig, types, disjunction))
        self._any_type = tuple((s, d) for s, t, d in compiled if t is None)
        by_type: dict[str, list[tuple[Signal, tuple[tuple[_Check, ...], ...]]]] = {}
        for sig, types, disjunction in compiled:
            for et in types or ():
                by_type.setdefault(et, []).append((sig, disjunction))
        self._by_type = {et: tuple(v) for et, v in by_type.items()}

    def classify(self, rec: TouchpointRecord) -> list[Signal]:
        """Signals of this touchpoint alone (repeat_contact needs history: see customer state)."""
        hits = []
        for sig, disjunction in self._by_type.get(rec.event_type, ()) + self._any_type:
            for conj in disjunction:
                for index, op, value, when_missing in conj:
                    actual = rec[index]
                    if not (when_missing if actual is None else op(actual, value)):
                        break
                else:
                    hits.append(sig)
                    break
        return hits


_COMPILED: dict[int, Classifier] = {}


def classify(classifier: Any, rec: TouchpointRecord) -> list[Signal]:
    """The reference classifier for the rule table `classifier` (a streams.domain.signals.Classifier) holds."""
    compiled = _COMPILED.get(id(classifier.rules))
    if compiled is None:
        compiled = _COMPILED[id(classifier.rules)] = Classifier(classifier.rules)
    return compiled.classify(rec)
