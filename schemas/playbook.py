"""The recovery playbook (issue 17): what to do about a churn alert, by the perceptions that were hurt.

A playbook names actions and the rules that call for them: a rule matches an alert when one of its signals is
among the alert's signals, or one of its dimensions among the alert's dimensions. `CXJ_PLAYBOOK_FILE` (JSON or
YAML, schema `schemas/jsonschema/playbook.json`) replaces the defaults, which follow the nine perceptions of
the domain: respect, transparency, knowledge, compensation, evaluation, safety, fairness, community, choice.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Final

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from schemas.errors import ConfigError
from schemas.rules import Dimension

__all__ = ["DEFAULT_PLAYBOOK", "Action", "Playbook", "PlaybookRule", "load_playbook"]

Slug = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{1,63}$")]


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Action(_Strict):
    """One thing the CX team does, and for which perception."""

    text: str = Field(min_length=1, max_length=500, description="What to do, as the agent reads it")
    perception: Dimension
    within_hours: int | None = Field(default=None, ge=1, le=24 * 30, description="How soon, when it matters")
    worth: str | None = Field(default=None, max_length=200, description="What a compensation is worth")


class PlaybookRule(_Strict):
    """Call for `actions` when the alert has one of `signals` or one of `dimensions`."""

    signals: list[Slug] = Field(default_factory=list)
    dimensions: list[Dimension] = Field(default_factory=list)
    actions: list[Slug] = Field(min_length=1)

    @model_validator(mode="after")
    def _matches_something(self) -> PlaybookRule:
        if not self.signals and not self.dimensions:
            raise ValueError(f"a rule for {self.actions} names neither signals nor dimensions")
        return self


class Playbook(_Strict):
    """Actions by id, and the rules that call for them, in the order they are tried."""

    model_config = ConfigDict(
        frozen=True, extra="forbid", json_schema_extra={"$id": "https://cx-journeys.dev/schemas/playbook.json"}
    )

    version: int = Field(default=1, ge=1, le=1)
    actions: dict[Slug, Action] = Field(min_length=1)
    rules: list[PlaybookRule] = Field(min_length=1)

    @model_validator(mode="after")
    def _rules_name_known_actions(self) -> Playbook:
        for n, rule in enumerate(self.rules):
            unknown = sorted(set(rule.actions) - set(self.actions))
            if unknown:
                raise ValueError(f"rules[{n}] names actions the playbook does not define: {', '.join(unknown)}")
        return self


def _a(text: str, perception: str, within_hours: int | None = None, worth: str | None = None) -> Action:
    return Action.model_validate({"text": text, "perception": perception, "within_hours": within_hours,
                                  "worth": worth})  # fmt: skip


DEFAULT_PLAYBOOK: Final = Playbook(
    actions={
        "personal_callback": _a("A person calls back, without a script, and owns the case to the end", "respect", 24),
        "proactive_status": _a("Send proactive status updates on the order until it is delivered", "transparency"),
        "explain_cause": _a("Explain what went wrong and what changes so it does not happen again", "knowledge", 48),
        "offer_compensation": _a(
            "Offer a compensation and say what it is worth",
            "compensation",
            48,
            "a voucher of 10% of the order, at least 20 CNY",
        ),
        "invite_feedback": _a("Invite feedback on what happened, and answer it", "evaluation", 72),
        "restate_guarantee": _a("Restate the guarantee: the payment is safe and what protects it", "safety", 24),
        "review_fairly": _a("Have a senior agent review the complaint and the decision on it", "fairness", 48),
        "answer_publicly": _a("Answer the public post or review, then take it to a private channel", "community", 24),
        "offer_choices": _a("Offer two or three ways forward and let the customer choose", "choice", 48),
    },
    rules=[
        PlaybookRule(signals=["no_human_answer", "long_wait", "repeated_transfer"], actions=["personal_callback"]),
        PlaybookRule(signals=["unresolved_contact", "repeat_contact"], actions=["explain_cause", "personal_callback"]),
        PlaybookRule(signals=["delivery_delayed"], actions=["proactive_status", "offer_compensation"]),
        PlaybookRule(signals=["payment_failed"], actions=["restate_guarantee", "offer_choices"]),
        PlaybookRule(signals=["complaint"], actions=["review_fairly", "offer_compensation"]),
        PlaybookRule(signals=["low_csat", "detractor", "high_effort"], actions=["invite_feedback"]),
        PlaybookRule(signals=["negative_review", "negative_social"], actions=["answer_publicly"]),
        PlaybookRule(dimensions=["choice"], actions=["offer_choices"]),
        PlaybookRule(dimensions=["respect"], actions=["personal_callback"]),
        PlaybookRule(dimensions=["transparency"], actions=["proactive_status"]),
        PlaybookRule(dimensions=["knowledge"], actions=["explain_cause"]),
        PlaybookRule(dimensions=["evaluation"], actions=["invite_feedback"]),
        PlaybookRule(dimensions=["safety"], actions=["restate_guarantee"]),
        PlaybookRule(dimensions=["fairness"], actions=["review_fairly"]),
        PlaybookRule(dimensions=["community"], actions=["answer_publicly"]),
        PlaybookRule(dimensions=["compensation"], actions=["offer_compensation"]),
    ],
)


def load_playbook(path: Path | None) -> Playbook:
    """The defaults, or `CXJ_PLAYBOOK_FILE` (JSON, or YAML by its suffix); a ConfigError names the file and
    what is wrong in it."""
    if path is None:
        return DEFAULT_PLAYBOOK
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"CXJ_PLAYBOOK_FILE {path}: cannot be read: {exc.strerror}") from None
    try:
        if path.suffix.lower() in (".yaml", ".yml"):
            return Playbook.model_validate(_yaml(path, text))
        return Playbook.model_validate_json(text)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in first["loc"]) or "the playbook"
        more = f" (+{exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise ConfigError(f"CXJ_PLAYBOOK_FILE {path}: {where}: {first['msg']}{more}") from None


def _yaml(path: Path, text: str) -> object:
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"CXJ_PLAYBOOK_FILE {path}: not YAML: {exc}") from None
