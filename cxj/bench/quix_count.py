"""The peer of `cxj bench pipeline`: Quix Streams counting touchpoints per customer, nothing else.

Run by `cxj.bench.peer` with the interpreter of its own environment (`build/peer-venv`, where
quixstreams is installed; cx-journeys is not, so this file imports nothing of it). It reads the
preloaded `cx.touchpoints` with its own consumer group, decodes each message (a touchpoint or a
`{"events": [...]}` envelope), and keeps a RocksDB count per customer (`customer_id`, else the first
identifier), without changelog topics. It stops once every touchpoint was counted (or the topic was
idle for 15 s) and prints one JSON line: touchpoints, seconds from the first message to the last,
process CPU seconds over that span and in all.

    python quix_count.py BOOTSTRAP TOPIC EXPECTED STATE_DIR GROUP
"""

from __future__ import annotations

import json
import resource
import sys
import threading
import time
from typing import Any

import orjson
from quixstreams import Application


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main(bootstrap: str, topic: str, expected: int, state_dir: str, group: str) -> None:
    app = Application(
        broker_address=bootstrap,
        consumer_group=group,
        auto_offset_reset="earliest",
        use_changelog_topics=False,
        state_dir=state_dir,
        loglevel="WARNING",
        auto_create_topics=False,
    )
    seen = {"events": 0, "first": 0.0, "last": 0.0, "cpu_first": 0.0}

    def explode(value: bytes) -> list[dict[str, Any] | None]:
        if not seen["first"]:
            seen["first"], seen["cpu_first"] = time.monotonic(), _cpu()
        try:
            doc = orjson.loads(value)
        except orjson.JSONDecodeError:
            return [None]  # consumed and counted as one touchpoint read, like any rejected payload
        if isinstance(doc, dict) and "events" in doc and isinstance(doc["events"], list):
            return doc["events"]
        return [doc]

    def count(event: dict[str, Any] | None, state: object) -> None:
        seen["events"] += 1
        seen["last"] = time.monotonic()
        identity = event.get("identity") if isinstance(event, dict) else None
        if isinstance(identity, dict):
            who = identity.get("customer_id") or next((str(v) for v in identity.values() if v), "")
            if who:
                state.set(who, state.get(who, 0) + 1)  # type: ignore[attr-defined]
        if seen["events"] >= expected:
            app.stop()

    def watchdog() -> None:
        while True:
            time.sleep(1.0)
            if seen["last"] and time.monotonic() - seen["last"] > 15:
                app.stop()
                return

    sdf = app.dataframe(app.topic(topic, value_deserializer="bytes", key_deserializer="bytes"))
    sdf = sdf.apply(explode, expand=True).update(count, stateful=True)
    threading.Thread(target=watchdog, daemon=True).start()
    app.run()
    span = max(seen["last"] - seen["first"], 1e-9)
    print(json.dumps({"touchpoints": seen["events"], "seconds": span,
                      "cpu_seconds": _cpu() - seen["cpu_first"], "cpu_seconds_total": _cpu()}))  # fmt: skip


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5])
