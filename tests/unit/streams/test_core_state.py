"""The native core reads and writes the changelog exactly as the Python stage does: every state and forward
the stage wrote for simulated traffic (stories, merges, held alerts, journeys, repeat contacts) decodes in
the core and encodes back to the same bytes."""

from __future__ import annotations

import random

import cx_core
import msgpack
import pytest

from cxj.simulate import generate
from tests.reference.codec import decode_state, encode_forward, encode_state, encode_state_absolute
from tests.unit.streams.cluster import Cluster
from tests.unit.test_simulate import config, policy, run_ingest


def test_every_state_of_a_simulated_run_round_trips_byte_for_byte() -> None:
    cfg = config(events=6000, customers=600, days=60.0, invalid_share=0.0)
    records = run_ingest(list(generate(cfg)), cfg).records
    cluster = Cluster(policy(), partitions=4)
    cluster.feed([r._replace(key=r.customer_id or "~" + r.identifiers[0]) for r in records])
    cluster.run(random.Random(0))
    values = [v for state in cluster.states for v in state.data.values()]
    assert len(values) > 500
    assert [cx_core.changelog_roundtrip(v) for v in values] == values
    # Forwards, states written with absolute times, and the first states (absolute, without the held alerts'
    # fields), read as the reference model reads them.
    forward = encode_forward("C9", 1_700_000_000_000)
    assert cx_core.changelog_roundtrip(forward) == forward
    states = [decode_state(v) for v in values if msgpack.unpackb(v)[0] == 2]
    absolute = [encode_state_absolute(s) for s in states]
    first = [msgpack.packb(msgpack.unpackb(v)[:11], use_bin_type=True) for v in absolute[:50]]
    assert [cx_core.changelog_roundtrip(v) for v in absolute] == [encode_state(s) for s in states]
    assert [cx_core.changelog_roundtrip(v) for v in first] == [encode_state(decode_state(v)) for v in first]
    # Relative times: a time within 49 days of the latest takes at most five bytes instead of nine (this
    # run's states span 60 days: 0.88 of the absolute form).
    relative = sum(len(encode_state(s)) for s in states)
    assert relative < 0.92 * sum(map(len, absolute))


@pytest.mark.parametrize("damaged", [b"", b"\x93", b"\xc1", b"\x92\x05\x01", b"\xdd\xff\xff\xff\xff", b"\x93\x00\xa1"])
def test_damaged_changelog_values_are_value_errors(damaged: bytes) -> None:
    with pytest.raises(ValueError):
        cx_core.changelog_roundtrip(damaged)
