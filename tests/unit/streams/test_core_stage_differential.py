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
from datetime import timedelta
from typing import Any

import orjson
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from cxj.simulate import generate
from schemas.rows import Table, TouchpointRow
from streams.domain.codec import Item, encode_items
from streams.domain.outputs import Output
from streams.domain.processor import PartitionState
from tests.factories import T0, touchpoint
from tests.reference.processor import PartitionState as ReferenceState
from tests.unit.streams.cluster import Cluster
from tests.unit.test_simulate import config, policy, run_ingest


def _plain(out: Any) -> dict[str, Any]:
    doc = asdict(out)
    doc["rows"] = {str(table): [tuple(r) for r in rows] for table, rows in out.rows.items()}
    doc["alerts"] = [a.model_dump() for a in out.alerts]
    doc["forward"] = [tuple(item) for item in out.forward]
    return doc


class EncodedState:
    """The core fed as the worker feeds it: the stitch messages' bytes, decoded by the core. (A wrapper, not a
    subclass: the compiled build's PartitionState cannot be subclassed by interpreted code.)"""

    def __init__(self, partition: int, policy: Any) -> None:
        self._state = PartitionState(partition, policy)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._state, name)

    def process(self, items: Any, now_ms: int, watermark: int) -> Output:
        items = list(items)
        # Split across messages as deliveries come: the items of several messages, in order.
        cut = len(items) // 2
        messages = [encode_items(part) for part in (items[:cut], items[cut:]) if part]
        return self._state.process_encoded(messages, now_ms, watermark)


@pytest.mark.parametrize("core_class", [PartitionState, EncodedState], ids=["items", "encoded"])
@pytest.mark.parametrize(("seed", "hold"), [(1, 0), (2, 30_000), (3, 30_000)])
def test_the_core_gives_the_reference_models_outputs(seed: int, hold: int, core_class: type[Any]) -> None:
    cfg = config(seed=seed, events=3000, customers=300, days=60.0, invalid_share=0.0)
    ingested = run_ingest(list(generate(cfg)), cfg).records
    records = [r._replace(key=r.customer_id or "~" + r.identifiers[0]) for r in ingested]
    p = policy(anonymous_hold=hold)
    runs = []
    for state_class in (ReferenceState, core_class):
        cluster = Cluster(p, partitions=4, state_class=state_class)
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


@settings(max_examples=60, deadline=None)
@given(attributes=st.dictionaries(st.text(max_size=8), st.text(max_size=12), max_size=4),
       wait=st.none() | st.integers(0, 10**6) | st.floats(0, 1e6), resolved=st.none() | st.booleans())  # fmt: skip
def test_any_record_gives_the_reference_models_touchpoint_row_from_items_and_from_bytes(
    attributes: dict[str, str], wait: Any, resolved: Any
) -> None:
    """Attributes of any text (quotes, controls, non-ASCII: orjson's escaping) and metrics of each type."""
    event = touchpoint("contact_ended", channel="phone", identity={"customer_id": "C-1"},
                       metrics={k: v for k, v in (("wait_seconds", wait), ("resolved", resolved)) if v is not None},
                       attributes=attributes)  # fmt: skip
    records = run_ingest([event], config(now=T0 + timedelta(hours=1))).records
    assume(len(records) == 1)  # attributes the wire model refuses (an empty name, say) are a dead letter
    [record] = records
    item = Item("tp", "C-1", record._replace(key="C-1"))
    p, now_ms = policy(), int((T0 + timedelta(hours=1)).timestamp() * 1000)
    rows = []
    for state in (ReferenceState(0, p), PartitionState(0, p), EncodedState(0, p)):
        out = state.process([item], now_ms, now_ms)
        rows.append([tuple(r) for r in out.rows[Table.TOUCHPOINTS]])
    assert rows[0] == rows[1] == rows[2]
    assert orjson.loads(rows[1][0][TouchpointRow._fields.index("attributes")]) == (record.attributes or {})
