"""ClickHouse calls served by a helper process: column serialization off the worker's core and GIL.

clickhouse-driver turns rows into columns and native blocks in Python. In the worker's own process
that work ran in a thread holding the GIL against the event loop: a one-second batch at 5,000
events/s took 0.5-0.7 s to insert instead of 0.16 s alone, which set the event-to-ClickHouse
latency, and the serialization was a sixth of the worker's CPU. `ClickHouseProcess` has the
interface the writer uses (`insert`, `execute`, `database`) and runs each call in one child
process that owns the connection; retries, backoff, deduplication and metrics stay in the
worker's `ClickHouseWriter`, so an outage looks exactly as it does in process.

The child is started on first use ("spawn": no fork of a threaded worker), exits when the worker
is gone, and is replaced after a crash (the call in flight is reported unavailable and retried).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from multiprocessing import get_context
from typing import Any, TypeVar

from cxj.errors import SinkUnavailable
from cxj.settings import ClickHouseDSN
from sinks.clickhouse import ClickHouse

__all__ = ["ClickHouseProcess"]

T = TypeVar("T")


class ClickHouseProcess:
    """A `ClickHouse` whose calls run in a child process; blocking, like the driver (call it from a thread)."""

    def __init__(self, dsn: ClickHouseDSN, **options: Any) -> None:
        self.dsn = dsn
        self._options = options
        self._pool: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()

    @property
    def database(self) -> str:
        return self.dsn.database

    @property
    def pid(self) -> int | None:
        """The child's pid once started (for RSS and CPU figures)."""
        pool = self._pool
        processes = getattr(pool, "_processes", None) or {}
        return next(iter(processes), None)

    def _call(self, fn: Callable[..., T], *args: Any) -> T:
        with self._lock:
            if self._pool is None:
                self._pool = ProcessPoolExecutor(
                    max_workers=1,
                    mp_context=get_context("spawn"),
                    initializer=_start,
                    initargs=(self.dsn, self._options, os.getpid()),
                )
            pool = self._pool
        try:
            return pool.submit(fn, *args).result()
        except BrokenProcessPool as exc:
            with self._lock:
                if self._pool is pool:
                    pool.shutdown(wait=False, cancel_futures=True)
                    self._pool = None
            raise SinkUnavailable(f"the ClickHouse sink process died ({exc}); starting another") from exc

    def insert(self, table: str, columns: Sequence[str], rows: Sequence[tuple[Any, ...]]) -> int:
        if not rows:
            return 0
        return self._call(_insert, table, tuple(columns), rows)

    def execute(self, sql: str, params: Any = None, **kwargs: Any) -> Any:
        return self._call(_execute, sql, params, kwargs)

    def query(self, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
        result: list[tuple[Any, ...]] = self.execute(sql.replace("{db}", self.database), params)
        return result

    def close(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)


# --- in the child ----------------------------------------------------------------------------------

_client: ClickHouse | None = None


def _start(dsn: ClickHouseDSN, options: dict[str, Any], parent: int) -> None:
    global _client
    _client = ClickHouse(dsn, **options)

    def watch() -> None:  # a kill -9 of the worker must not leave the child behind
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _connected() -> ClickHouse:
    if _client is None:
        raise RuntimeError("ClickHouse sink process used before its initializer ran")
    return _client


def _insert(table: str, columns: tuple[str, ...], rows: Sequence[tuple[Any, ...]]) -> int:
    return _connected().insert(table, columns, rows)


def _execute(sql: str, params: Any, kwargs: dict[str, Any]) -> Any:
    return _connected().execute(sql, params, **kwargs)
