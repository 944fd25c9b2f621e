"""A user refused the schema learns that migrations run as the administrator (no server)."""

from __future__ import annotations

from typing import Any

import pytest
from clickhouse_driver.errors import ServerException

from schemas.errors import MigrationError, SinkError
from schemas.settings import ClickHouseDSN
from sinks.migrate import Migration, migrate


class RefusingClickHouse:
    """Answers SELECT 1 and refuses every CREATE with `code`, as a server refuses a user without DDL rights."""

    def __init__(self, code: int) -> None:
        self.database = "cx"
        self.dsn = ClickHouseDSN.parse("clickhouse://cx_writer:pw@h:9000/cx")
        self.code = code

    def execute(self, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
        if sql.startswith("CREATE"):
            cause = ServerException("DDL queries are prohibited for the user", code=self.code)
            raise SinkError(f"ClickHouse rejected the statement (code {self.code})") from cause
        return [(1,)] if sql == "SELECT 1" else []


@pytest.mark.parametrize("code", [164, 291, 392, 497])
def test_a_refused_migration_points_at_the_administrator_url(code: int) -> None:
    with pytest.raises(MigrationError, match=r"cx_writer may not change the schema.*CXJ_CLICKHOUSE_ADMIN_URL"):
        migrate(RefusingClickHouse(code), [Migration(1, "t", "CREATE TABLE IF NOT EXISTS {db}.t (a UInt8);")])  # type: ignore[arg-type]


def test_other_failures_carry_no_such_hint() -> None:
    with pytest.raises(MigrationError) as raised:
        migrate(RefusingClickHouse(62), [])  # type: ignore[arg-type]  # 62: a syntax error
    assert "CXJ_CLICKHOUSE_ADMIN_URL" not in str(raised.value)
