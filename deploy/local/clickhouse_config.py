"""The local ClickHouse's server config and users (least privilege), as written by `cxj stack up`.

The local stack runs Debian bookworm's ClickHouse 18.16, which has no SQL access control (RBAC arrived in
20.x): what each user may do is set by its settings profile, its quota and `allow_databases`. Measured on
18.16 (tests/integration/test_security.py checks each refusal but KILL and the time, result-row and quota
limits, which need a second running query, take long to reach or lock the user out for the hour):

- `cx_bi` (profile `bi`, `readonly=1`): SELECT in `cx` only. Refused with code 164 (READONLY): every table
  function (`url`, `remote`, `file`, `numbers` ...), SET, INSERT, CREATE (also TEMPORARY), DROP, ALTER,
  OPTIMIZE, RENAME, TRUNCATE, SYSTEM, and KILL QUERY of another user's query. Settings a client sends with a
  query are ignored over the native protocol and refused over HTTP, so the limits below hold. Past them:
  memory 241, time 159, result rows 396, quota 201.
- `cx_writer` (profile `writer`, `allow_ddl=0`): INSERT and SELECT in `cx`; CREATE, DROP, ALTER (including
  mutations), RENAME, TRUNCATE, OPTIMIZE, SYSTEM and `SET allow_ddl` are refused with code 392
  (QUERY_IS_PROHIBITED).
- `default`: the administrator (schema migrations, benchmarks, `cxj forget`); loopback only.

What 18.16 cannot deny (deploy/compose and deploy/k8s, on a current ClickHouse, deny it with grants):

- Database `system` is readable by every user whatever `allow_databases` says (row policies and per-table
  grants do not exist yet), so `cx_bi` sees `system.processes` (the text of other users' running queries),
  `system.mutations` and `system.query_log`. Queries are logged only with `log_queries=1` (off by default;
  `cxj bench view` turns it on for its own queries), and `cx_bi` cannot turn it on.
- `readonly` is the only setting a client cannot raise, and it also forbids INSERT; so the writer can send
  `allow_ddl=1` with a query (native query settings, or `?allow_ddl=1` over HTTP) and get DDL back, and it
  can call table functions. `allow_ddl=0` stops the pipeline's own code and any ordinary session, not
  someone who holds the writer's password and means harm.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Final
from xml.sax.saxutils import escape

__all__ = ["BI_PROFILE", "BI_QUOTA", "WRITER_PROFILE", "server_config", "users_config"]

# Per query and per user: far above what the report, the example queries or a dashboard need (the heaviest,
# `touchpoints_resolved` over 1,000,000 touchpoints, peaks at 65 MB and 0.55 s), low enough that one BI
# session cannot take the server's memory or hold a core for long.
BI_PROFILE: Final = {
    "readonly": 1,
    "max_memory_usage": 2_000_000_000,
    "max_memory_usage_for_user": 4_000_000_000,
    "max_execution_time": 120,
    "max_result_rows": 5_000_000,
    "max_result_bytes": 2_000_000_000,
    "result_overflow_mode": "throw",
    "max_concurrent_queries_for_user": 16,
}
# Per hour, for all of cx_bi together: a dashboard of 8 panels refreshed every 5 s runs ~6,000 queries.
BI_QUOTA: Final = {
    "duration": 3600,
    "queries": 50_000,
    "errors": 5_000,
    "result_rows": 500_000_000,
    "read_rows": 200_000_000_000,
    "execution_time": 7_200,
}
WRITER_PROFILE: Final = {"max_memory_usage": 4_000_000_000, "allow_ddl": 0}
_ADMIN_PROFILE: Final = {"max_memory_usage": 4_000_000_000}
_LOOPBACK: Final = "<networks><ip>127.0.0.1</ip><ip>::1</ip></networks>"


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _elements(values: Mapping[str, object]) -> str:
    return "".join(f"<{name}>{escape(str(value))}</{name}>" for name, value in values.items())


def server_config(*, root: Path, tcp_port: int, http_port: int) -> str:
    """config.xml: loopback only, data and logs under `root`, users from `root/users.xml`."""
    data = root / "data"
    return f"""<?xml version="1.0"?>
<!-- Written by `cxj stack up`; edits are overwritten. -->
<yandex>
  <logger><level>warning</level><log>{root}/server.log</log><errorlog>{root}/server.err.log</errorlog>
    <size>100M</size><count>2</count></logger>
  <listen_host>127.0.0.1</listen_host>
  <tcp_port>{tcp_port}</tcp_port>
  <http_port>{http_port}</http_port>
  <interserver_http_port>0</interserver_http_port>
  <path>{data}/</path>
  <tmp_path>{data / "tmp"}/</tmp_path>
  <user_files_path>{data}/user_files/</user_files_path>
  <format_schema_path>{data}/format_schemas/</format_schema_path>
  <users_config>{root}/users.xml</users_config>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
  <timezone>UTC</timezone>
  <mark_cache_size>268435456</mark_cache_size>
  <max_concurrent_queries>100</max_concurrent_queries>
  <query_log><database>system</database><table>query_log</table>
    <flush_interval_milliseconds>1000</flush_interval_milliseconds></query_log>
</yandex>
"""


def users_config(database: str, *, admin_password: str, writer_password: str, bi_password: str) -> str:
    """users.xml: `default` administers, `cx_writer` inserts and selects, `cx_bi` reads; see the module doc."""
    db = escape(database)
    quota = {k: v for k, v in BI_QUOTA.items() if k != "duration"}
    return f"""<?xml version="1.0"?>
<!-- Written by `cxj stack up`; edits are overwritten. No password-less user; the pipeline and BI users see
     database {db} only (and, on ClickHouse 18.16, database system: see deploy/local/clickhouse_config.py). -->
<yandex>
  <profiles>
    <default>{_elements(_ADMIN_PROFILE)}</default>
    <writer>{_elements(WRITER_PROFILE)}</writer>
    <bi>{_elements(BI_PROFILE)}</bi>
  </profiles>
  <users>
    <default>
      <password_sha256_hex>{_sha256(admin_password)}</password_sha256_hex>
      {_LOOPBACK}<profile>default</profile><quota>default</quota>
    </default>
    <cx_writer>
      <password_sha256_hex>{_sha256(writer_password)}</password_sha256_hex>
      {_LOOPBACK}<profile>writer</profile><quota>default</quota>
      <allow_databases><database>{db}</database></allow_databases>
    </cx_writer>
    <cx_bi>
      <password_sha256_hex>{_sha256(bi_password)}</password_sha256_hex>
      {_LOOPBACK}<profile>bi</profile><quota>bi</quota>
      <allow_databases><database>{db}</database></allow_databases>
    </cx_bi>
  </users>
  <quotas>
    <default><interval><duration>3600</duration><queries>0</queries><errors>0</errors><result_rows>0</result_rows>
      <read_rows>0</read_rows><execution_time>0</execution_time></interval></default>
    <bi><interval><duration>{BI_QUOTA["duration"]}</duration>{_elements(quota)}</interval></bi>
  </quotas>
</yandex>
"""
