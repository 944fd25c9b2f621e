"""The recovery playbook (issue 17): its defaults, its file, and the actions an alert calls for (pure)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import get_args

import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas.errors import ConfigError
from schemas.playbook import DEFAULT_PLAYBOOK, load_playbook
from schemas.rules import Dimension
from streams.domain.playbook import recommend
from streams.domain.signals import DEFAULT_RULES

NEGATIVE = [r.signal for r in DEFAULT_RULES.rules if r.polarity < 0] + ["repeat_contact"]
WEIGHT = {r.signal: abs(r.weight) for r in DEFAULT_RULES.rules} | {"repeat_contact": 2.0}
DIMENSION = {r.signal: r.dimension for r in DEFAULT_RULES.rules} | {"repeat_contact": "knowledge"}


def test_the_defaults_have_an_action_for_each_of_the_nine_perceptions_and_for_every_negative_signal() -> None:
    assert {a.perception for a in DEFAULT_PLAYBOOK.actions.values()} == set(get_args(Dimension))
    for signal in NEGATIVE:
        assert recommend(DEFAULT_PLAYBOOK, DEFAULT_RULES, [signal], [DIMENSION[signal]]), signal
    assert DEFAULT_PLAYBOOK.actions["offer_compensation"].worth  # a compensation says what it is worth


def test_the_signal_that_hurt_most_comes_first_and_each_action_once_with_its_reasons() -> None:
    got = recommend(DEFAULT_PLAYBOOK, DEFAULT_RULES, ["long_wait", "complaint", "no_human_answer"],
                    ["respect", "fairness"])  # fmt: skip
    assert WEIGHT["complaint"] > WEIGHT["long_wait"]
    assert [r.action for r in got][:2] == ["review_fairly", "offer_compensation"]
    callback = next(r for r in got if r.action == "personal_callback")
    assert callback.because == ["long_wait", "no_human_answer"] and callback.perception == "respect"
    assert len({r.action for r in got}) == len(got)


def test_a_dimension_alone_calls_for_its_perceptions_action() -> None:
    [only] = recommend(DEFAULT_PLAYBOOK, DEFAULT_RULES, [], ["choice"])
    assert (only.action, only.because) == ("offer_choices", [])


@given(st.lists(st.sampled_from(NEGATIVE), unique=True, max_size=8))
def test_actions_come_most_urgent_first_for_any_alert(signals: list[str]) -> None:
    dimensions = sorted({DIMENSION[s] for s in signals})
    got = recommend(DEFAULT_PLAYBOOK, DEFAULT_RULES, signals, dimensions)
    assert len({r.action for r in got}) == len(got) and all(r.action in DEFAULT_PLAYBOOK.actions for r in got)
    urgency = [max(WEIGHT[s] for s in r.because) for r in got]
    assert urgency == sorted(urgency, reverse=True)
    assert set(signals) <= {s for r in got for s in r.because}  # every signal the alert names is answered


def test_a_playbook_file_in_json_or_yaml_replaces_the_defaults(tmp_path: Path) -> None:
    book = {"actions": {"call_back": {"text": "Call back today", "perception": "respect", "within_hours": 8}},
            "rules": [{"signals": ["long_wait"], "actions": ["call_back"]}]}  # fmt: skip
    (tmp_path / "p.json").write_text(json.dumps(book))
    (tmp_path / "p.yaml").write_text("actions:\n  call_back: {text: Call back today, perception: respect}\n"
                                     "rules:\n  - {signals: [long_wait], actions: [call_back]}\n")  # fmt: skip
    for name in ("p.json", "p.yaml"):
        [r] = recommend(load_playbook(tmp_path / name), DEFAULT_RULES, ["long_wait"], ["respect"])
        assert r.action == "call_back"
    assert load_playbook(None) is DEFAULT_PLAYBOOK


@pytest.mark.parametrize(
    ("name", "text", "says"),
    [
        ("a.json", '{"actions": {"x_y": {"text": "t", "perception": "respect"}}, "rules": [{"signals": ["long_wait"], '
                   '"actions": ["nope"]}]}', "rules[0] names actions the playbook does not define: nope"),
        ("b.json", '{"actions": {"x_y": {"text": "t", "perception": "mood"}}, "rules": []}', "actions.x_y.perception"),
        ("c.json", '{"actions": {}, "rules": [], "extra": 1}', "actions"),
        ("d.yaml", "actions: [unclosed", "not YAML"),
        ("e.json", "{", "Invalid JSON"),
    ],
)  # fmt: skip
def test_a_bad_playbook_file_is_a_clear_error_naming_the_file_and_the_place(
    tmp_path: Path, name: str, text: str, says: str
) -> None:
    (tmp_path / name).write_text(text)
    with pytest.raises(ConfigError, match="CXJ_PLAYBOOK_FILE") as error:
        load_playbook(tmp_path / name)
    assert says in str(error.value) and name in str(error.value)


def test_a_missing_playbook_file_says_so(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot be read"):
        load_playbook(tmp_path / "missing.yaml")
