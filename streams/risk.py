"""Rolling experience counters, churn-risk levels, crossings into `high`, and the score."""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Sequence
from typing import Final

from schemas.records import RISK_LEVELS

__all__ = [
    "HIGH_RISK_THRESHOLD",
    "churn_level",
    "crossings",
    "experience_score",
    "in_window",
]

HIGH_RISK_THRESHOLD: Final = 3  # "事不过三": three dissatisfying experiences
SCORE_SCALE: Final = 10.0


def churn_level(dissatisfied: int) -> str:
    """0 none, 1 low, 2 elevated, 3 or more high."""
    return RISK_LEVELS[min(dissatisfied, HIGH_RISK_THRESHOLD)]


def in_window(when: int, t: int, window: int) -> bool:
    """Is `when` in the rolling window (t - window, t]? Times in ms."""
    return t - window < when <= t


def crossings(first_negatives: Iterable[int], window: int, horizon: int) -> list[tuple[int, int]]:
    """(instant, count just before) where the rolling dissatisfied count reaches 3 from below.

    The count at instant s is the number of first-negative times in (s - window, s]. It only
    rises at a first-negative time, so each candidate is one of those; the count just before
    an instant e covers [e - window, e). Crossings whose window reaches before `horizon` (state
    pruned there) cannot be judged and are skipped, so pruning never invents a crossing.
    """
    times = sorted(first_negatives)
    found = []
    previous = None
    for e in times:
        if e == previous:
            continue
        previous = e
        if e - window < horizon:
            continue
        at = bisect_right(times, e) - bisect_right(times, e - window)
        before = bisect_left(times, e) - bisect_left(times, e - window)
        if at >= HIGH_RISK_THRESHOLD > before:
            found.append((e, before))
    return found


def high_until(first_negatives: Sequence[int], start: int, window: int) -> int | None:
    """The first instant after `start` at which the count falls below high again (None: still high).

    `first_negatives` sorted. A time f counts in (t - window, t], so it stops counting at f + window;
    the count can only fall at such an instant.
    """
    for f in first_negatives:
        drop = f + window
        if drop <= start:
            continue
        if bisect_right(first_negatives, drop) - bisect_right(first_negatives, drop - window) < HIGH_RISK_THRESHOLD:
            return drop
    return None


def experience_score(contributions: Sequence[tuple[int, float]], t: int, window: int, half_life: float) -> float:
    """Score in [-100, 100] from (time ms, weight) pairs of signals in the window.

    score = 100 * tanh(S / 10), S = sum of weight * 0.5 ** ((t - time) / half_life) over the
    signals whose experience time lies in (t - window, t]. Negative weights lower it; a signal
    loses half its pull every half-life; ten points of fresh net weight give about 76.
    """
    total = 0.0
    for when, weight in contributions:
        if t - window < when <= t:
            total += weight * 0.5 ** ((t - when) / half_life)
    return round(100.0 * math.tanh(total / SCORE_SCALE), 2)
