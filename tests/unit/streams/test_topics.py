"""Topic declarations (streams/runtime/topics.py): what Kafka would refuse if they were wrong."""

from __future__ import annotations

from schemas.settings import Settings
from schemas.touchpoint import MAX_BATCH_BYTES
from streams.runtime.topics import CHANGELOG, LINKS, MAX_REQUEST_BYTES, TOUCHPOINTS, topic_specs


def test_every_topic_takes_the_largest_message_its_writer_may_send() -> None:
    """Kafka refuses a record batch over max.message.bytes (1 MiB by default) and the worker would stop."""
    for spec in topic_specs(Settings()):
        limit = int(spec.config["max.message.bytes"])
        most = MAX_BATCH_BYTES if spec.name == TOUCHPOINTS else MAX_REQUEST_BYTES
        assert limit > most, (spec.name, limit, most)


def test_state_and_links_are_compacted_and_nothing_is_left_to_broker_defaults() -> None:
    specs = {s.name: s for s in topic_specs(Settings(topic_partitions=6))}
    assert specs[CHANGELOG].config["cleanup.policy"] == specs[LINKS].config["cleanup.policy"] == "compact"
    assert all(s.partitions == 6 for name, s in specs.items() if name != "cx.internal.claims")
    assert specs["cx.internal.claims"].partitions == 1  # one arbiter, one order of claims
