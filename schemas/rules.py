"""Signal rules (Contract 2): the configurable table that turns touchpoints into signals."""

from __future__ import annotations

from typing import Annotated, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "DEFAULT_RULES",
    "DIMENSIONS",
    "Condition",
    "RepeatContactRule",
    "SignalRule",
    "SignalRules",
]

DIMENSIONS: Final = (
    "safety",
    "transparency",
    "choice",
    "fairness",
    "compensation",
    "community",
    "knowledge",
    "respect",
    "evaluation",
)
Dimension = Literal[
    "safety",
    "transparency",
    "choice",
    "fairness",
    "compensation",
    "community",
    "knowledge",
    "respect",
    "evaluation",
]
MetricField = Literal[
    "wait_seconds",
    "transfers",
    "handled_by",
    "resolved",
    "csat",
    "nps",
    "ces",
    "rating",
    "sentiment",
    "amount",
]
Slug = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{1,63}$")]
_FROZEN: Final = ConfigDict(frozen=True, extra="forbid")


class Condition(BaseModel):
    """`field op value`; `when_missing` is the outcome when the touchpoint lacks the field."""

    model_config = _FROZEN

    field: MetricField
    op: Literal["eq", "ne", "lt", "le", "gt", "ge"]
    value: bool | int | float | str
    when_missing: bool = False


class SignalRule(BaseModel):
    """A signal fires when the event type matches and any conjunction of conditions holds."""

    model_config = _FROZEN

    signal: Slug
    polarity: Literal[-1, 1]
    dimension: Dimension
    weight: float = Field(description="Contribution to experience_score; sign must match polarity")
    event_types: tuple[Slug, ...] | None = Field(default=None, description="None: any event type")
    any_of: tuple[tuple[Condition, ...], ...] = Field(
        default=((),), description="Disjunction of conjunctions; ((),) means always"
    )

    @model_validator(mode="after")
    def _weight_sign(self) -> SignalRule:
        if self.weight * self.polarity <= 0:
            raise ValueError(f"{self.signal}: weight {self.weight} must have the polarity's sign")
        return self


class RepeatContactRule(BaseModel):
    """The one stateful rule: a contact about a case/order that had a contact recently."""

    model_config = _FROZEN

    signal: Slug = "repeat_contact"
    polarity: Literal[-1] = -1
    dimension: Dimension = "knowledge"
    weight: float = Field(default=-2.0, lt=0)
    event_type: Slug = "contact_started"
    within_days: int = Field(default=7, ge=1)


class SignalRules(BaseModel):
    """The whole rule table; load a replacement from JSON with `CXJ_SIGNAL_RULES_FILE`."""

    model_config = _FROZEN

    rules: tuple[SignalRule, ...]
    repeat_contact: RepeatContactRule | None = RepeatContactRule()

    @model_validator(mode="after")
    def _unique(self) -> SignalRules:
        names = [r.signal for r in self.rules]
        if self.repeat_contact is not None:
            names.append(self.repeat_contact.signal)
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"signal names must be unique: {dupes}")
        if len(names) > 62:
            raise ValueError("at most 62 signals (they are kept as a bit mask)")
        return self

    @property
    def signal_names(self) -> tuple[str, ...]:
        """Every signal in bit order: the table's rules, then repeat_contact."""
        names = tuple(r.signal for r in self.rules)
        if self.repeat_contact is not None:
            names += (self.repeat_contact.signal,)
        return names


def _c(field: MetricField, op: str, value: bool | int | float | str, missing: bool = False) -> Condition:
    return Condition.model_validate({"field": field, "op": op, "value": value, "when_missing": missing})


_ENDED = ("contact_ended",)
# The defaults of Contract 2, one rule per row of its table. Weights: the domain facts rank
# being ignored, complaints and public negativity (one dissatisfied customer sways ~25 people)
# above single friction points.
DEFAULT_RULES: Final = SignalRules(
    rules=(
        SignalRule(
            signal="no_human_answer",
            polarity=-1,
            dimension="respect",
            weight=-3.0,
            event_types=_ENDED,
            any_of=(
                (_c("handled_by", "eq", "none"),),
                (_c("handled_by", "eq", "bot"), _c("resolved", "eq", False)),
            ),
        ),
        SignalRule(
            signal="long_wait",
            polarity=-1,
            dimension="respect",
            weight=-2.0,
            any_of=((_c("wait_seconds", "ge", 60),),),
        ),
        SignalRule(
            signal="repeated_transfer",
            polarity=-1,
            dimension="respect",
            weight=-2.0,
            any_of=((_c("transfers", "ge", 2),),),
        ),
        SignalRule(
            signal="unresolved_contact",
            polarity=-1,
            dimension="knowledge",
            weight=-3.0,
            event_types=_ENDED,
            any_of=((_c("resolved", "eq", False),),),
        ),
        SignalRule(
            signal="payment_failed",
            polarity=-1,
            dimension="safety",
            weight=-2.0,
            event_types=("payment_failed",),
        ),
        SignalRule(
            signal="delivery_delayed",
            polarity=-1,
            dimension="transparency",
            weight=-2.0,
            event_types=("delivery_delayed",),
        ),
        SignalRule(
            signal="complaint",
            polarity=-1,
            dimension="fairness",
            weight=-4.0,
            event_types=("complaint_filed",),
        ),
        SignalRule(
            signal="low_csat",
            polarity=-1,
            dimension="evaluation",
            weight=-3.0,
            any_of=((_c("csat", "le", 2),),),
        ),
        SignalRule(
            signal="detractor",
            polarity=-1,
            dimension="evaluation",
            weight=-2.0,
            any_of=((_c("nps", "le", 6),),),
        ),
        SignalRule(
            signal="high_effort",
            polarity=-1,
            dimension="evaluation",
            weight=-2.0,
            any_of=((_c("ces", "le", 3),),),
        ),
        SignalRule(
            signal="negative_review",
            polarity=-1,
            dimension="community",
            weight=-3.0,
            any_of=((_c("rating", "le", 2),),),
        ),
        SignalRule(
            signal="negative_social",
            polarity=-1,
            dimension="community",
            weight=-4.0,
            any_of=((_c("sentiment", "le", -0.5),),),
        ),
        SignalRule(
            signal="first_contact_resolution",
            polarity=1,
            dimension="knowledge",
            weight=2.0,
            event_types=_ENDED,
            any_of=(
                (
                    _c("resolved", "eq", True),
                    _c("handled_by", "eq", "human"),
                    _c("transfers", "le", 1, True),
                    _c("wait_seconds", "lt", 60, True),
                ),
                (
                    _c("resolved", "eq", True),
                    _c("handled_by", "eq", "bot"),
                    _c("transfers", "le", 1, True),
                    _c("wait_seconds", "lt", 60, True),
                ),
            ),
        ),
        SignalRule(
            signal="high_csat",
            polarity=1,
            dimension="evaluation",
            weight=2.0,
            any_of=((_c("csat", "ge", 4),),),
        ),
        SignalRule(signal="promoter", polarity=1, dimension="evaluation", weight=3.0, any_of=((_c("nps", "ge", 9),),)),
        SignalRule(
            signal="positive_review",
            polarity=1,
            dimension="evaluation",
            weight=2.0,
            any_of=((_c("rating", "ge", 4),),),
        ),
        SignalRule(
            signal="proactive_update",
            polarity=1,
            dimension="transparency",
            weight=1.0,
            event_types=("notification_sent",),
        ),
        SignalRule(
            signal="compensation",
            polarity=1,
            dimension="compensation",
            weight=3.0,
            event_types=("compensation_offered",),
        ),
    ),
)
