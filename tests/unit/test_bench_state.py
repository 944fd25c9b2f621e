"""`cxj bench state` holds exactly the customers asked for, through the worker's own code."""

from __future__ import annotations

import gc
from pathlib import Path

from cxj.bench.state import StateBenchConfig, run_state_bench
from schemas.settings import Settings


def test_every_customer_becomes_one_key_with_its_state_measured(tmp_path: Path) -> None:
    thresholds = gc.get_threshold()
    try:
        result = run_state_bench(Settings(home=tmp_path), StateBenchConfig(customers=600))
    finally:  # it tunes the collector as a worker does
        gc.unfreeze()
        gc.set_threshold(*thresholds)
    assert result["keys"] == 600
    assert result["touchpoints"] == 1200  # an order and a call each, every one accepted by ingest
    # Two journeys, an order, an experience with signals: more than a key's name, far under 1.5 KB.
    assert 60 < result["serialized_bytes_per_customer"] < 1536
    assert result["rss_mb_after"] >= result["rss_mb_before"] > 0
