"""ClickHouse access: one client wrapper that translates driver errors at the boundary."""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Any, Final

from clickhouse_driver import Client
from clickhouse_driver import errors as ch_errors

from schemas.errors import SinkError, SinkUnavailable
from schemas.settings import ClickHouseDSN

__all__ = ["ClickHouse", "to_columns"]

# Codes that mean "not now" rather than "never": too many parts, memory, timeouts, shutdown.
_RETRYABLE_CODES: Final = frozenset({159, 160, 164, 202, 209, 210, 241, 242, 252, 319, 425})


def to_columns(rows: Sequence[tuple[Any, ...]], width: int) -> list[list[Any]]:
    """Rows to columns for a columnar insert (pure)."""
    if not rows:
        return [[] for _ in range(width)]
    return [list(col) for col in zip(*rows, strict=True)]


def _first_line(message: str) -> str:
    """The server's message without the stack trace old servers append."""
    return message.split(". Stack trace:", 1)[0].split("Stack trace:", 1)[0].strip()


class ClickHouse:
    """A native-protocol connection to one database; reconnects on the next call after a failure."""

    def __init__(
        self,
        dsn: ClickHouseDSN,
        *,
        connect_timeout: float = 5.0,
        send_timeout: float = 60.0,
        connect_database: str | None = None,
    ) -> None:
        """Connect into `dsn.database` (users may be allowed that database only), or `connect_database`."""
        self.dsn = dsn
        self._client = Client(
            host=dsn.host,
            port=dsn.port,
            user=dsn.user,
            password=dsn.password.get_secret_value(),
            database=connect_database or dsn.database,
            connect_timeout=connect_timeout,
            send_receive_timeout=send_timeout,
        )

    @property
    def database(self) -> str:
        return self.dsn.database

    def execute(self, sql: str, params: Any = None, **kwargs: Any) -> Any:
        """Run one statement; SinkUnavailable when the server is unreachable or busy."""
        try:
            return self._client.execute(sql, params, **kwargs)
        except (TimeoutError, ch_errors.NetworkError, ch_errors.SocketTimeoutError, OSError, EOFError) as exc:
            self._client.disconnect()
            raise SinkUnavailable(f"ClickHouse at {self.dsn.host}:{self.dsn.port} unreachable: {exc}") from exc
        except ch_errors.ServerException as exc:
            message = _first_line(exc.message)
            # 252 is also "too many partitions for a single INSERT block": this block, never a later one.
            if exc.code in _RETRYABLE_CODES and not (exc.code == 252 and "partitions" in message):
                raise SinkUnavailable(f"ClickHouse busy (code {exc.code}): {message}") from exc
            raise SinkError(f"ClickHouse rejected the statement (code {exc.code}): {message}") from exc
        except ch_errors.Error as exc:
            self._client.disconnect()
            raise SinkError(f"ClickHouse client error: {exc}") from exc

    def insert(self, table: str, columns: Sequence[str], rows: Sequence[tuple[Any, ...]]) -> int:
        """Columnar insert of `rows` (tuples in `columns` order) into `<db>.<table>`."""
        if not rows:
            return 0
        sql = f"INSERT INTO {self.database}.{table} ({', '.join(columns)}) VALUES"
        try:
            self.execute(sql, to_columns(rows, len(columns)), columnar=True, types_check=False)
        except (struct.error, TypeError, ValueError, OverflowError, UnicodeError) as exc:
            # The driver failed to serialize a value for its column (e.g. a DateTime beyond 2106): the
            # data's fault, not the server's; the half-sent insert leaves the connection unusable.
            self._client.disconnect()
            raise SinkError(f"a value does not fit its column in {table}: {exc}") from exc
        return len(rows)

    def query(self, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
        result: list[tuple[Any, ...]] = self.execute(sql.replace("{db}", self.database), params)
        return result

    def close(self) -> None:
        self._client.disconnect()
