"""Stage 2 in the native core against its reference model (tests/reference/processor.py, the Python stage
it replaced): the same deliveries give the same rows, alerts, re-routed items, changelog bytes, counters.

Simulated traffic (stories with merges of anonymous keys, held alerts, journeys, repeat contacts,
duplicates) runs through the in-memory cluster twice, once per implementation, with the same seeded
interleaving of partitions, claims and replica updates; then wall time passes for held alerts and
event time for journeys, and every output is compared field by field.
"""

from __future__ import annotations

import random
from dataclasses import asdict
from typing import Any

import pytest

from cxj.simulate import generate
from tests.reference.processor import PartitionState as ReferenceState
from tests.unit.streams.cluster import Cluster
from tests.unit.test_simulate import config, policy, run_ingest


def _plain(out: Any) -> dict[str, Any]:
    doc = asdict(out)
    doc["rows"] = {str(table): [tuple(r) for r in rows] for table, rows in out.rows.items()}
    doc["alerts"] = [a.model_dump() for a in out.alerts]
    doc["forward"] = [tuple(item) for item in out.forward]
    return doc


@pytest.mark.parametrize(("seed", "hold"), [(1, 0), (2, 30_000), (3, 30_000)])
def test_the_core_gives_the_reference_models_outputs(seed: int, hold: int) -> None:
    cfg = config(seed=seed, events=3000, customers=300, days=60.0, invalid_share=0.0)
    ingested = run_ingest(list(generate(cfg)), cfg).records
    records = [r._replace(key=r.customer_id or "~" + r.identifiers[0]) for r in ingested]
    p = policy(anonymous_hold=hold)
    runs = []
    for state_class in (ReferenceState, None):
        cluster = Cluster(p, partitions=4) if state_class is None else Cluster(p, partitions=4, state_class=state_class)
        cluster.feed(records)
        cluster.run(random.Random(seed))
        cluster.release(hold + 1)
        for state in cluster.states:  # event time moves on: journeys close
            cluster.outputs.append(state.expire(cfg.now_ms + 40 * 86_400_000, cfg.now_ms + 40 * 86_400_000))
        runs.append(cluster)
    reference, core = runs
    assert len(core.outputs) == len(reference.outputs) > 100
    for mine, theirs in zip(core.outputs, reference.outputs, strict=True):
        assert _plain(mine) == _plain(theirs)
    assert [s.data for s in core.states] == [s.data for s in reference.states]
    assert sum(len(o.alerts) for o in core.outputs) > 0
