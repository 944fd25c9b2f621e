"""ClickHouse access: one client wrapper that translates driver errors at the boundary."""

from __future__ import annotations

import struct
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Final

from clickhouse_driver import Client, defines
from clickhouse_driver import errors as ch_errors
from clickhouse_driver.block import ColumnOrientedBlock
from clickhouse_driver.protocol import ClientPacketTypes
from clickhouse_driver.varint import write_varint
from clickhouse_driver.writer import write_binary_str
from cx_core import Rows, native_block

from schemas.errors import SinkError, SinkUnavailable
from schemas.settings import ClickHouseDSN

__all__ = ["ClickHouse", "every_row", "to_columns"]

# Codes that mean "not now" rather than "never": too many parts, memory, timeouts, shutdown.
_RETRYABLE_CODES: Final = frozenset({159, 160, 164, 202, 209, 210, 241, 242, 252, 319, 425})


def to_columns(rows: Sequence[tuple[Any, ...]], width: int) -> list[list[Any]]:
    """Rows to columns for a columnar insert (pure)."""
    if not rows:
        return [[] for _ in range(width)]
    return [list(col) for col in zip(*rows, strict=True)]


def every_row(rows: Sequence[tuple[Any, ...]], chunks: Sequence[Rows]) -> list[tuple[Any, ...]]:
    """`rows`, then the rows of the core's `chunks`, all as row tuples (for the paths that need Python values)."""
    return [*rows, *(row for chunk in chunks for row in chunk)]


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
        with self._translated():
            return self._client.execute(sql, params, **kwargs)

    @contextmanager
    def _translated(self) -> Iterator[None]:
        """Driver errors as the pipeline's: SinkUnavailable (retry later) or SinkError (this data, never)."""
        try:
            yield
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

    def insert(
        self, table: str, columns: Sequence[str], rows: Sequence[tuple[Any, ...]], chunks: Sequence[Rows] = ()
    ) -> int:
        """Insert `rows` (tuples in `columns` order), then the rows of `chunks` (made by the core), into
        `<db>.<table>`: one block serialized by the core (cx_core.native_block) and sent over the driver's
        connection; a column type the core does not write leaves that insert to the driver, columnar."""
        n = len(rows) + sum(len(c) for c in chunks)
        if not n:
            return 0
        sql = f"INSERT INTO {self.database}.{table} ({', '.join(columns)}) VALUES"
        try:
            with self._translated():
                self._insert_native(sql, rows if isinstance(rows, list) else list(rows), list(chunks))
        except (struct.error, TypeError, ValueError, OverflowError, UnicodeError) as exc:
            # A value does not fit its column (e.g. a DateTime beyond 2106): the data's fault, not the
            # server's; the half-sent insert leaves the connection unusable.
            self._client.disconnect()
            raise SinkError(f"a value does not fit its column in {table}: {exc}") from exc
        return n

    def _insert_native(self, sql: str, rows: list[tuple[Any, ...]], chunks: list[Rows]) -> None:
        """clickhouse-driver's insert (Client.process_insert_query) with the data block written by the core."""
        client = self._client
        with client.disconnect_on_error(sql, None):
            conn = client.connection
            conn.send_query(sql)
            conn.send_external_tables(None)
            sample = client.receive_sample_block()
            revision = conn.server_info.used_revision
            try:
                block = native_block(
                    rows,
                    sample.columns_with_types,
                    block_info=revision >= defines.DBMS_MIN_REVISION_WITH_BLOCK_INFO,
                    custom_serialization=revision >= defines.DBMS_MIN_REVISION_WITH_CUSTOM_SERIALIZATION,
                    chunks=chunks,
                )
            except NotImplementedError:
                # A type the core does not write: the driver serializes this insert, on the same query.
                every = every_row(rows, chunks)
                client.send_data(sample, to_columns(every, len(sample.columns_with_types)), columnar=True)
                client.receive_end_of_insert_query()
                return
            write_varint(ClientPacketTypes.DATA, conn.fout)
            if revision >= defines.DBMS_MIN_REVISION_WITH_TEMPORARY_TABLES:
                write_binary_str("", conn.fout)  # the table name of an external table: none
            conn.block_out.fout.write(block)
            conn.block_out.finalize()
            client.receive_profile_events()
            conn.send_data(ColumnOrientedBlock())  # an empty block ends the data
            client.receive_profile_events()
            client.receive_end_of_insert_query()

    def query(self, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
        result: list[tuple[Any, ...]] = self.execute(sql.replace("{db}", self.database), params)
        return result

    def close(self) -> None:
        self._client.disconnect()
