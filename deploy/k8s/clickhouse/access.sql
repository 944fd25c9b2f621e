-- Least privilege for cx-journeys on the ClickHouse cluster (current releases: SQL access control).
-- Apply once, as a user with access_management, before `cxj init`:
--   clickhouse-client --multiquery < access.sql
-- Every server needs deploy/compose/clickhouse/cx-access.xml in config.d (system.* and information_schema
-- need a grant; changeable_in_readonly constraints). Users and their passwords are created out of band with
-- one of these roles each (deploy/k8s/README.md, "Access control"); no secret is in this file.

-- Schema owner and erasure: `cxj init` (migrations, ON CLUSTER) and `cxj forget` (ALTER ... DELETE on the
-- _local tables ON CLUSTER, then clusterAllReplicas(system.mutations)). Only the init Job holds its password.
CREATE ROLE IF NOT EXISTS cx_admin_role ON CLUSTER 'cx';
GRANT ON CLUSTER 'cx' ALL ON cx.* TO cx_admin_role;
GRANT ON CLUSTER 'cx' SELECT ON system.mutations TO cx_admin_role;
GRANT ON CLUSTER 'cx' CLUSTER ON *.* TO cx_admin_role;
GRANT ON CLUSTER 'cx' CREATE TEMPORARY TABLE, REMOTE ON *.* TO cx_admin_role;

-- The pipeline: insert and select in cx, nothing else (no DDL, no table functions, no system.*).
CREATE ROLE IF NOT EXISTS cx_writer_role ON CLUSTER 'cx';
GRANT ON CLUSTER 'cx' SELECT, INSERT ON cx.* TO cx_writer_role;

-- BI and Grafana: select in cx, nothing else; readonly=1 also refuses SET and every table function.
CREATE ROLE IF NOT EXISTS cx_bi_role ON CLUSTER 'cx';
GRANT ON CLUSTER 'cx' SELECT ON cx.* TO cx_bi_role;

CREATE SETTINGS PROFILE IF NOT EXISTS cx_writer ON CLUSTER 'cx'
    SETTINGS allow_ddl = 0 CONST, max_memory_usage = 8000000000
    TO cx_writer_role;

-- clickhouse-go (Grafana's ClickHouse plugin) sends max_execution_time with every query: it may lower it only.
CREATE SETTINGS PROFILE IF NOT EXISTS cx_bi ON CLUSTER 'cx'
    SETTINGS readonly = 1,
        max_memory_usage = 8000000000 CONST,
        max_memory_usage_for_user = 16000000000 CONST,
        max_execution_time = 120 MIN 1 MAX 120 CHANGEABLE_IN_READONLY,
        max_result_rows = 5000000 CONST,
        max_result_bytes = 2000000000 CONST,
        result_overflow_mode = 'throw' CONST,
        max_concurrent_queries_for_user = 16 CONST
    TO cx_bi_role;

-- Far above what a dashboard of 8 panels refreshed every 5 s needs (~6,000 queries an hour).
CREATE QUOTA IF NOT EXISTS cx_bi ON CLUSTER 'cx' KEYED BY user_name
    FOR INTERVAL 1 hour MAX queries = 50000, errors = 5000, result_rows = 500000000, read_rows = 200000000000,
        execution_time = 7200
    TO cx_bi_role;
