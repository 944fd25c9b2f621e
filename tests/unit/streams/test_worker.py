"""The worker's process-level tuning."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from streams.runtime.worker import GC_THRESHOLDS, tune_gc


@pytest.fixture
def restored_gc() -> Iterator[None]:
    before = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*before)


@pytest.mark.usefixtures("restored_gc")
def test_tune_gc_freezes_what_is_loaded_and_collects_young_objects_less_often() -> None:
    tune_gc()
    assert gc.get_threshold() == GC_THRESHOLDS
    assert GC_THRESHOLDS[0] > 700  # CPython's default, measured to cost a fifth of the worker's CPU
    assert gc.get_freeze_count() > 0


@pytest.mark.usefixtures("restored_gc")
def test_cycles_are_still_collected_after_tuning() -> None:
    tune_gc()

    class Node:
        def __init__(self) -> None:
            self.other: Node | None = None

    collected = []
    a, b = Node(), Node()
    a.other, b.other = b, a
    ref = weakref.ref(a, lambda _: collected.append(True))
    del a, b
    gc.collect()
    assert ref() is None and collected
