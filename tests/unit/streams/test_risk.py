"""Churn-risk levels, crossings into `high`, the rolling window, and the experience score."""

from __future__ import annotations

import random

import pytest

from tests.reference.risk import HIGH_RISK_THRESHOLD, churn_level, crossings, experience_score, in_window

DAY = 86_400_000
WINDOW = 90 * DAY
HALF_LIFE = 30.0 * DAY
B = 1000 * DAY  # a base time well past the epoch: the window never reaches before time 0


@pytest.mark.parametrize(
    ("dissatisfied", "level"),
    [(0, "none"), (1, "low"), (2, "elevated"), (3, "high"), (4, "high"), (50, "high")],
)
def test_churn_level_thresholds(dissatisfied: int, level: str) -> None:
    assert churn_level(dissatisfied) == level


def test_three_strikes_is_the_high_threshold() -> None:
    assert HIGH_RISK_THRESHOLD == 3
    assert churn_level(HIGH_RISK_THRESHOLD - 1) != "high" == churn_level(HIGH_RISK_THRESHOLD)


@pytest.mark.parametrize(
    ("when", "inside"),
    [
        (1000 * DAY - WINDOW, False),
        (1000 * DAY - WINDOW + 1, True),
        (1000 * DAY, True),
        (1000 * DAY + 1, False),
    ],
    ids=["t-window", "t-window+1ms", "t", "after-t"],
)
def test_window_is_open_at_t_minus_window_and_closed_at_t(when: int, inside: bool) -> None:
    assert in_window(when, 1000 * DAY, WINDOW) is inside


# --- crossings -------------------------------------------------------------------------------


def test_third_experience_in_the_window_is_one_crossing_from_elevated() -> None:
    times = [B + 10 * DAY, B + 20 * DAY, B + 30 * DAY]
    assert crossings(times, WINDOW, 0) == [(B + 30 * DAY, 2)]


def test_more_experiences_while_already_high_cross_nothing_more() -> None:
    times = [B + d * DAY for d in (10, 20, 30, 31, 40, 50)]
    assert crossings(times, WINDOW, 0) == [(B + 30 * DAY, 2)]


@pytest.mark.parametrize(
    ("third_after_first", "crosses"),
    [(WINDOW - 1, True), (WINDOW, False), (WINDOW + DAY, False)],
    ids=["window-1ms", "window", "window+1d"],
)
def test_three_experiences_must_fit_in_one_window(third_after_first: int, crosses: bool) -> None:
    times = [100 * DAY, 100 * DAY + third_after_first // 2, 100 * DAY + third_after_first]
    assert bool(crossings(times, WINDOW, 0)) is crosses


def test_falling_back_and_rising_again_is_a_second_crossing() -> None:
    first = [B + 10 * DAY, B + 11 * DAY, B + 12 * DAY]
    second = [B + 200 * DAY, B + 201 * DAY, B + 202 * DAY]
    assert crossings(first + second, WINDOW, 0) == [(B + 12 * DAY, 2), (B + 202 * DAY, 2)]


def test_two_experiences_at_one_instant_jump_from_low_to_high_once() -> None:
    assert crossings([B, B + 10 * DAY, B + 10 * DAY], WINDOW, 0) == [(B + 10 * DAY, 1)]


def test_one_leaving_as_another_arrives_keeps_high_without_a_new_crossing() -> None:
    # Just before B + WINDOW three are in; at B + WINDOW the first has left and a fourth came.
    times = [B, B + DAY, B + 2 * DAY, B + WINDOW]
    assert crossings(times, WINDOW, 0) == [(B + 2 * DAY, 2)]


def test_experiences_at_the_same_instant_cross_once() -> None:
    assert crossings([B + 5 * DAY] * 3, WINDOW, 0) == [(B + 5 * DAY, 0)]


def test_crossings_do_not_depend_on_input_order() -> None:
    rng = random.Random(7)
    times = [B + rng.randrange(0, 400) * DAY for _ in range(40)]
    expected = crossings(sorted(times), WINDOW, 0)
    for _ in range(20):
        rng.shuffle(times)
        assert crossings(times, WINDOW, 0) == expected


def test_crossings_whose_window_reaches_a_pruned_strike_are_not_judged() -> None:
    # horizon: the latest first-negative time pruned; a strike there would count in [e - window, e).
    times = [100 * DAY, 101 * DAY, 102 * DAY]
    assert crossings(times, WINDOW, horizon=102 * DAY - WINDOW - 1) == [(102 * DAY, 2)]
    assert crossings(times, WINDOW, horizon=102 * DAY - WINDOW) == []
    assert crossings(times, WINDOW, horizon=0) == [(102 * DAY, 2)]  # nothing pruned


def test_each_crossing_instant_is_a_move_into_high() -> None:
    rng = random.Random(3)
    times = sorted(B + rng.randrange(0, 600) * DAY for _ in range(60))
    for instant, before in crossings(times, WINDOW, 0):
        at = sum(1 for t in times if in_window(t, instant, WINDOW))
        assert churn_level(at) == "high"
        assert churn_level(before) != "high"


# --- experience score --------------------------------------------------------------------------

T = 1000 * DAY


def score(*contributions: tuple[int, float]) -> float:
    return experience_score(list(contributions), T, WINDOW, HALF_LIFE)


def test_no_signals_score_zero() -> None:
    assert score() == 0


@pytest.mark.parametrize("weight", [1e6, -1e6, 50.0, -50.0])
def test_score_stays_within_minus_100_and_100(weight: float) -> None:
    value = score(*((T - i * DAY, weight) for i in range(80)))
    assert -100 <= value <= 100
    assert (value > 0) is (weight > 0)


def test_negative_signals_lower_the_score() -> None:
    base = score((T - DAY, 2.0), (T - 2 * DAY, 3.0))
    lowered = score((T - DAY, 2.0), (T - 2 * DAY, 3.0), (T, -2.0))
    assert lowered < base
    assert score((T, -2.0)) < 0 < score((T, 2.0))


def test_a_signal_loses_half_its_pull_each_half_life() -> None:
    aged = score((T - int(HALF_LIFE), -4.0))
    assert aged == score((T, -2.0))
    assert abs(score((T, -4.0))) > abs(aged) > 0


def test_older_signals_weigh_less() -> None:
    ages = [0, DAY, 10 * DAY, 45 * DAY, 89 * DAY]
    values = [score((T - age, -3.0)) for age in ages]
    assert values == sorted(values)  # negative: older means closer to zero


@pytest.mark.parametrize(
    ("when", "counted"),
    [(T - WINDOW, False), (T - WINDOW + DAY, True), (T, True), (T + DAY, False)],
    ids=["window-start", "inside", "t", "after-t"],
)
def test_only_signals_in_the_window_count(when: int, counted: bool) -> None:
    assert (score((when, -3.0)) != 0) is counted


def test_score_is_deterministic_and_order_free() -> None:
    contributions = [(T - i * 3 * DAY, (-1.0) ** i * (i % 5 + 1)) for i in range(25)]
    expected = score(*contributions)
    rng = random.Random(11)
    for _ in range(10):
        rng.shuffle(contributions)
        assert score(*contributions) == expected


def test_score_is_symmetric_in_polarity() -> None:
    assert score((T - DAY, 3.0), (T - 9 * DAY, 2.0)) == -score((T - DAY, -3.0), (T - 9 * DAY, -2.0))
