"""Which recovery actions an alert calls for, most urgent first (pure; issue 17).

Each rule of the playbook that matches the alert (one of its signals among the alert's, or one of its
dimensions) is as urgent as the worst signal it matched: the largest |weight| of the signal rules
(Contract 2's score weights), the weight of the alert's worst signal of that dimension for a dimension rule.
Actions come in that order, each once, with the signals that called for it; ties keep the playbook's order.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from schemas.playbook import Playbook
from schemas.records import RecommendedAction
from schemas.rules import SignalRules

__all__ = ["recommend"]


def recommend(
    playbook: Playbook, rules: SignalRules, signals: Sequence[str], dimensions: Sequence[str]
) -> list[RecommendedAction]:
    """The actions for an alert with these (negative) signals and dimensions, most urgent first."""
    table: list[tuple[str, str, float]] = [(r.signal, r.dimension, r.weight) for r in rules.rules]
    if rules.repeat_contact is not None:
        rc = rules.repeat_contact
        table.append((rc.signal, rc.dimension, rc.weight))
    dimension_of = {signal: dimension for signal, dimension, _ in table}
    weight_of = {signal: abs(weight) for signal, _, weight in table}
    hurt: Mapping[str, float] = {s: weight_of.get(s, 1.0) for s in signals}
    called: dict[str, tuple[float, tuple[int, int], set[str]]] = {}  # urgency, first place, reasons
    for order, rule in enumerate(playbook.rules):
        matched = {s for s in rule.signals if s in hurt}
        for dimension in rule.dimensions:
            if dimension in dimensions:
                matched |= {s for s in hurt if dimension_of.get(s) == dimension}
        if not matched and not set(rule.dimensions) & set(dimensions):
            continue
        urgency = max((hurt[s] for s in matched), default=1.0)
        for position, action in enumerate(rule.actions):
            best, first, because = called.get(action, (0.0, (order, position), set()))
            called[action] = (max(best, urgency), min(first, (order, position)), because | matched)
    ranked = sorted(called.items(), key=lambda kv: (-kv[1][0], kv[1][1]))
    return [_recommended(playbook, action, because) for action, (_, _, because) in ranked]


def _recommended(playbook: Playbook, action: str, because: set[str]) -> RecommendedAction:
    a = playbook.actions[action]
    return RecommendedAction(action=action, text=a.text, perception=a.perception, because=sorted(because),
                             within_hours=a.within_hours, worth=a.worth)  # fmt: skip
