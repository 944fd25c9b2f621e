"""Reference model of the risk rules (the Python implementation the native core replaced: core/src/risk.rs)."""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Sequence
from typing import Final

from schemas.records import RISK_LEVELS

__all__ = [
    "HIGH_RISK_THRESHOLD",
    "attribute_alerts",
    "churn_level",
    "crossings",
    "episodes",
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
    an instant e covers [e - window, e). `horizon` is the latest first-negative time among the
    experiences pruned from the state (0: none): a crossing whose window [e - window, e] reaches back
    to it cannot be judged (a pruned strike may have counted) and is skipped, so pruning never invents
    a crossing. Any other crossing is judged however long after it the state learns of it.
    """
    times = sorted(first_negatives)
    found = []
    previous = None
    for e in times:
        if e == previous:
            continue
        previous = e
        if horizon and e - window <= horizon:
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


def episodes(first_negatives: Sequence[int], window: int, horizon: int) -> list[tuple[int, int, int | None]]:
    """The high episodes that can be judged, by start: (start, count just before, end; None: still high)."""
    times = sorted(first_negatives)
    return [(start, before, high_until(times, start, window)) for start, before in crossings(times, window, horizon)]


def attribute_alerts(alerts: Iterable[int], spans: Sequence[tuple[int, int, int | None]]) -> dict[int, int]:
    """Which episode each alert instant stands for: alert -> index in `spans` (episodes(), by start).

    An alert inside an episode stands for it (the first one, if history put two there). An alert that
    now lies between episodes was raised for a crossing that later facts moved earlier (an experience
    found negative sooner, through a late event or a merge): it stands for the episode just before it,
    unless that one has an alert of its own. Alerts are never taken back, so this is what "one alert
    per episode" means once history changes: no episode has two alerts standing for it.
    """
    starts = [start for start, _, _ in spans]
    owner: dict[int, int] = {}
    taken: set[int] = set()
    pending = []
    for a in sorted(set(alerts)):
        i = bisect_right(starts, a) - 1
        if i < 0:
            continue
        end = spans[i][2]
        if end is None or a < end:
            if i not in taken:
                owner[a] = i
                taken.add(i)
        else:
            pending.append((a, i))
    for a, i in pending:
        if i not in taken:
            owner[a] = i
            taken.add(i)
    return owner


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
