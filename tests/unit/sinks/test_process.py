"""The ClickHouse sink process, without a server: errors cross over, a dead child is replaced."""

from __future__ import annotations

import os
import signal
import socket
import time
from collections.abc import Iterator

import pytest
from pydantic import SecretStr

from cxj.errors import SinkUnavailable
from cxj.settings import ClickHouseDSN
from sinks.process import ClickHouseProcess


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def sink() -> Iterator[ClickHouseProcess]:
    dsn = ClickHouseDSN("127.0.0.1", _closed_port(), "cx_writer", SecretStr("pw"), "cx")
    process = ClickHouseProcess(dsn, connect_timeout=0.5)
    yield process
    process.close()


def test_an_unreachable_server_is_reported_as_unavailable_from_the_child(sink: ClickHouseProcess) -> None:
    with pytest.raises(SinkUnavailable, match="unreachable"):
        sink.insert("touchpoints", ["event_id"], [("e-1",)])
    assert sink.pid is not None and sink.pid != os.getpid()


def test_a_killed_child_fails_the_call_in_flight_as_unavailable_and_is_replaced(sink: ClickHouseProcess) -> None:
    with pytest.raises(SinkUnavailable):
        sink.execute("SELECT 1")
    first = sink.pid
    assert first is not None
    os.kill(first, signal.SIGKILL)
    time.sleep(0.2)
    with pytest.raises(SinkUnavailable, match=r"sink process died|unreachable"):
        sink.execute("SELECT 1")
    with pytest.raises(SinkUnavailable, match="unreachable"):  # a new child answers
        sink.execute("SELECT 1")
    assert sink.pid not in (None, first)


def test_nothing_is_started_for_an_empty_insert(sink: ClickHouseProcess) -> None:
    assert sink.insert("touchpoints", ["event_id"], []) == 0
    assert sink.pid is None
