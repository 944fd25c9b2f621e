"""`cxj dlq replay` on the real stack: a dead letter fixed by time is re-fed once, and only once."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from cxj.dlq import replay
from schemas.settings import Settings
from tests.factories import touchpoint
from tests.integration.pipeline_support import query, send_and_drain

pytestmark = pytest.mark.integration


def test_replay_refeeds_fixed_dead_letters_once(pipeline: Settings) -> None:
    replay(pipeline)  # earlier tests' dead letters: take them out of the way first
    run = uuid.uuid4().hex[:10]
    # 20 s beyond the 5-minute tolerance: rejected now, valid once the clock has caught up.
    early = touchpoint("page_view", identity={"customer_id": f"R-{run}"}, event_id=f"{run}-early",
                       at=datetime.now(UTC) + timedelta(seconds=pipeline.future_tolerance_seconds + 20))  # fmt: skip
    unfixable = touchpoint(channel="fax", identity={"customer_id": f"R-{run}"}, event_id=f"{run}-fax")
    send_and_drain(pipeline, [early, unfixable])
    count = "SELECT count() FROM {db}.touchpoints FINAL WHERE customer_key = %(k)s"
    assert query(pipeline, count, {"k": f"R-{run}"}) == [(0,)]

    time.sleep(25)
    # Other tests' traffic may hold dead letters that are still in the future: they bounce back to the DLQ
    # after each replay and are read again by the next one; ours is fixed by now and does not come back.
    stats = replay(pipeline, reasons={"future_timestamp"})
    assert set(stats.by_reason) == {"future_timestamp"} and stats.by_reason["future_timestamp"] >= 1
    assert stats.skipped["unknown_channel"] >= 1
    send_and_drain(pipeline, [])
    assert query(pipeline, count, {"k": f"R-{run}"}) == [(1,)]

    again = replay(pipeline, reasons={"future_timestamp"})
    assert again.replayed < stats.replayed  # progress was committed: only what bounced since is read
    forced = replay(pipeline, reasons={"future_timestamp"}, from_beginning=True)
    assert forced.replayed >= 1
    send_and_drain(pipeline, [])
    assert query(pipeline, count, {"k": f"R-{run}"}) == [(1,)]  # re-sent, deduplicated by event_id
    assert query(pipeline, "SELECT count() FROM {db}.touchpoints WHERE event_id = %(e)s",
                 {"e": f"{run}-early"})[0][0] >= 1  # fmt: skip
