"""The core's ClickHouse Native blocks (cx_core.native_block), which every insert of the writer sends.

Held byte for byte to what clickhouse-driver writes for the same rows and column types (its own block writer is
the oracle, for an 18.16 server's protocol revision and a current one's), for rows of every table of the contract;
and read back by a current ClickHouse (chDB) into the same table contents as an insert of the same rows as VALUES.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from clickhouse_driver import Client, defines
from clickhouse_driver.block import ColumnOrientedBlock
from clickhouse_driver.bufferedwriter import CompressedBufferedWriter
from clickhouse_driver.connection import ServerInfo
from clickhouse_driver.streams.native import BlockOutputStream
from cx_core import native_block
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.rows import ROWS_BY_TABLE, Table
from sinks.clickhouse import to_columns
from sinks.migrate import migrate
from tests.current_clickhouse import ChdbClickHouse, dataset

chdb_session = pytest.importorskip("chdb.session", reason="chdb is not installed: pip install -e '.[dev]'")

REVISIONS = {"18.16": 54413, "current": defines.CLIENT_REVISION}


@pytest.fixture(scope="module")
def chdb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChdbClickHouse]:
    session = chdb_session.Session(str(tmp_path_factory.mktemp("chdb")))
    try:
        ch = ChdbClickHouse(session, "cx_native")
        ch.execute("CREATE DATABASE cx_native")
        migrate(ch)  # type: ignore[arg-type]
        yield ch
    finally:
        session.close()


@pytest.fixture(scope="module")
def types(chdb: ChdbClickHouse) -> dict[str, list[tuple[str, str]]]:
    """Each table's insert columns (its row class's fields) with the types the migrations gave them."""
    out = {}
    for table, cls in ROWS_BY_TABLE.items():
        described = dict(chdb.execute(f"SELECT name, type FROM system.columns WHERE database = 'cx_native' "
                                      f"AND table = '{table}'"))  # fmt: skip
        out[str(table)] = [(name, described[name]) for name in cls._fields]
    return out


def driver_block(rows: list[tuple[Any, ...]], columns: list[tuple[str, str]], revision: int) -> bytes:
    """What clickhouse-driver writes on the wire for this block (its BlockOutputStream, no compression)."""
    context = Client("localhost").connection.context
    context.server_info = ServerInfo("ClickHouse", 25, 1, 1, revision, "UTC", "", revision)
    context.settings = {"use_client_time_zone": True}
    out = io.BytesIO()  # the driver's buffered writer hands what it buffered to a "compressor": keep it
    block = ColumnOrientedBlock(columns, to_columns(rows, len(columns)), types_check=False)
    BlockOutputStream(CompressedBufferedWriter(out, 1 << 20), context).write(block)
    return out.getvalue()


def core_block(rows: list[tuple[Any, ...]], columns: list[tuple[str, str]], revision: int) -> bytes:
    return native_block(
        rows,
        columns,
        block_info=revision >= defines.DBMS_MIN_REVISION_WITH_BLOCK_INFO,
        custom_serialization=revision >= defines.DBMS_MIN_REVISION_WITH_CUSTOM_SERIALIZATION,
    )


@pytest.mark.parametrize("revision", REVISIONS.values(), ids=REVISIONS.keys())
@pytest.mark.parametrize("table", [str(t) for t in ROWS_BY_TABLE])
def test_every_table_s_rows_are_the_bytes_the_driver_writes(
    table: str, revision: int, types: dict[str, list[tuple[str, str]]]
) -> None:
    rows = dataset().rows[table]
    assert rows
    assert core_block(rows, types[table], revision) == driver_block(rows, types[table], revision)


TEXT = st.text(st.characters(codec="utf-8"), max_size=12)
VALUES = {
    "String": TEXT,
    "UInt8": st.integers(0, 255),
    "UInt16": st.integers(0, 65_535),
    "UInt32": st.integers(0, 2**32 - 1),
    "UInt64": st.integers(0, 2**64 - 1),
    "Int8": st.integers(-128, 127),
    "Int32": st.integers(-(2**31), 2**31 - 1),
    "Float32": st.floats(width=32, allow_nan=False),
    "Float64": st.floats(allow_nan=False),
    "DateTime": st.integers(0, 2**32 - 1),
    "Array(String)": st.lists(TEXT, max_size=4),
}


def _value(kind: str) -> st.SearchStrategy[Any]:
    if kind.startswith("Nullable("):
        return st.none() | _value(kind[len("Nullable(") : -1])
    if kind.startswith("Enum8("):
        names = [part.split("'")[1] for part in kind[len("Enum8(") : -1].split(",")]
        return st.sampled_from(names)
    return VALUES[kind]


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_any_row_values_are_the_bytes_the_driver_writes(data: st.DataObject, types: dict[str, Any]) -> None:
    table = data.draw(st.sampled_from(sorted(types)))
    columns = types[table]
    rows = data.draw(st.lists(st.tuples(*(_value(kind) for _, kind in columns)), min_size=1, max_size=6))
    for revision in REVISIONS.values():
        assert core_block(rows, columns, revision) == driver_block(rows, columns, revision)


def test_a_current_clickhouse_reads_the_blocks_into_what_values_inserts_store(
    chdb: ChdbClickHouse, types: dict[str, list[tuple[str, str]]], tmp_path: Path
) -> None:
    """The standalone Native format (no block info, no serialization flags) through `file()`, against VALUES."""
    values = ChdbClickHouse(chdb.session, "cx_values")
    values.execute("CREATE DATABASE cx_values")
    migrate(values)  # type: ignore[arg-type]
    for table, rows in dataset().rows.items():
        columns = types[table]
        names = ", ".join(name for name, _ in columns)
        path = tmp_path / f"{table}.native"
        path.write_bytes(native_block(rows, columns, block_info=False, custom_serialization=False))
        chdb.execute(f"INSERT INTO cx_native.{table} ({names}) SELECT * FROM file('{path}', Native)")
        values.insert(table, [n for n, _ in columns], rows)
        read = [chdb.execute(f"SELECT {names} FROM {db}.{table} ORDER BY {names}") for db in ("cx_native", "cx_values")]
        # Replaced rows (the same key, a later version) may already be merged away: both read the same.
        assert read[0] == read[1] and 0 < len(read[0]) <= len(rows), table


def test_a_value_its_column_cannot_hold_is_a_value_error_naming_the_column(types: dict[str, Any]) -> None:
    from tests.current_clickhouse import row

    erasures = types[str(Table.ERASURES)]
    base = ROWS_BY_TABLE[Table.ERASURES]
    with pytest.raises(ValueError, match=r"column done_at \(DateTime\)"):
        native_block([row(base, request_id="r", done_at=2**32)], erasures, block_info=True, custom_serialization=False)
    with pytest.raises(ValueError, match=r"column expected \(UInt32\)"):
        native_block([row(base, request_id="r", expected=-1)], erasures, block_info=True, custom_serialization=False)
    with pytest.raises(ValueError, match=r"column request_id \(String\): String: a int is no string"):
        native_block([row(base, request_id=5)], erasures, block_info=True, custom_serialization=False)
    with pytest.raises(ValueError, match="row 0 has 2 values for 7 columns"):
        native_block([("r", "identity")], erasures, block_info=True, custom_serialization=False)
    with pytest.raises(TypeError, match="rows as tuples"):
        native_block([["r"]], erasures, block_info=True, custom_serialization=False)  # type: ignore[list-item]


def test_a_type_the_core_does_not_write_is_not_implemented() -> None:
    with pytest.raises(NotImplementedError, match=r"LowCardinality\(String\)"):
        native_block([("a",)], [("x", "LowCardinality(String)")], block_info=True, custom_serialization=True)


def _core_rows() -> dict[str, list[Any]]:
    """The core's own rows (cx_core.Rows) of every table stage 2 writes, from simulated traffic."""
    from cxj.simulate import generate
    from streams.domain.codec import Item
    from streams.domain.processor import PartitionState
    from tests.unit.test_simulate import config, policy, run_ingest

    cfg = config(seed=11, events=600, customers=40, days=30.0, invalid_share=0.0)
    state = PartitionState(0, policy())
    out: dict[str, list[Any]] = {}
    for record in run_ingest(list(generate(cfg)), cfg).records:
        key = record.customer_id or "~" + record.identifiers[0]
        got = state.process([Item("tp", key, record._replace(key=key))], cfg.now_ms, cfg.now_ms)
        for table, rows in got.rows.items():
            out.setdefault(str(table), []).append(rows)
    later = cfg.now_ms + 40 * 86_400_000  # journeys close
    for table, rows in state.expire(later, later).rows.items():
        out.setdefault(str(table), []).append(rows)
    return out


CORE_ROWS = _core_rows()


def test_the_core_s_rows_are_a_sequence_of_the_table_s_row_tuples() -> None:
    rows = CORE_ROWS[str(Table.TOUCHPOINTS)][0]
    cls = ROWS_BY_TABLE[Table.TOUCHPOINTS]
    assert len(rows) == 1 and type(rows[0]) is cls and rows[-1] == rows[0] == next(iter(rows))
    assert list(rows[0:1]) == [rows[0]] and len(rows[1:]) == 0 and rows.tuples() == [rows[0]]
    with pytest.raises(IndexError):
        rows[1]
    import copy

    assert copy.deepcopy(rows).tuples() == rows.tuples()


@pytest.mark.parametrize("revision", REVISIONS.values(), ids=REVISIONS.keys())
@pytest.mark.parametrize("table", sorted(CORE_ROWS))
def test_the_core_s_rows_serialize_as_their_tuples_do_alone_and_after_python_rows(
    table: str, revision: int, types: dict[str, list[tuple[str, str]]]
) -> None:
    chunks = CORE_ROWS[table]
    tuples = [row for chunk in chunks for row in chunk]
    assert len(tuples) > 1
    columns, flags = (
        types[table],
        {
            "block_info": revision >= defines.DBMS_MIN_REVISION_WITH_BLOCK_INFO,
            "custom_serialization": revision >= defines.DBMS_MIN_REVISION_WITH_CUSTOM_SERIALIZATION,
        },
    )
    expected = driver_block(tuples, columns, revision)
    assert native_block([], columns, chunks=chunks, **flags) == expected
    head = list(chunks[0])  # the first chunk's rows as Python tuples, then the other chunks as they are
    assert native_block(head, columns, chunks=chunks[1:], **flags) == expected
