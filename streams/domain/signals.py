"""The configurable rule table (Contract 2): loaded, validated, and given bits in signal masks.

The native core compiles the same table and classifies touchpoints with it (core/src/signals.rs);
this module loads it (`CXJ_SIGNAL_RULES_FILE`) and names what masks hold.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

from schemas.rules import DEFAULT_RULES, SignalRules

__all__ = ["Classifier", "Signal", "load_rules"]


class Signal(NamedTuple):
    """One signal kind: its bit in masks, polarity, dimension and score weight."""

    bit: int
    name: str
    polarity: int
    dimension: str
    weight: float


def load_rules(path: Path | None) -> SignalRules:
    """The default table, or a replacement from a JSON file (validated, errors name the rule)."""
    if path is None:
        return DEFAULT_RULES
    return SignalRules.model_validate_json(path.read_bytes())


class Classifier:
    """The rule table with each signal's bit: the table's rules in order, then repeat_contact."""

    def __init__(self, rules: SignalRules = DEFAULT_RULES) -> None:
        self.rules = rules
        self.signals: tuple[Signal, ...] = tuple(
            Signal(bit, r.signal, r.polarity, r.dimension, r.weight) for bit, r in enumerate(rules.rules)
        )
        self.repeat_contact: Signal | None = None
        if rules.repeat_contact is not None:
            rc = rules.repeat_contact
            self.repeat_contact = Signal(len(self.signals), rc.signal, rc.polarity, rc.dimension, rc.weight)
            self.signals += (self.repeat_contact,)
        self.by_name = {s.name: s for s in self.signals}
        self.negative_mask = sum(1 << s.bit for s in self.signals if s.polarity < 0)
        self.positive_mask = sum(1 << s.bit for s in self.signals if s.polarity > 0)

    def names(self, mask: int) -> list[str]:
        """Signal names of a bit mask, in table order."""
        return [s.name for s in self.signals if mask >> s.bit & 1]
