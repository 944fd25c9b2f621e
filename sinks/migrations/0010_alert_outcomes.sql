-- What became of each churn alert's customer (issue 17; docs/contract.md, "Recovery"), in event time, within
-- CXJ_RECOVERY_DAYS after it: pending, recovered, relapsed, lost; `decided` once the window has passed (or on a
-- relapse). Rewritten by the worker whenever the outcome changes, under the customer's key at that time; the
-- highest version is the outcome (read with FINAL). `cxj forget` erases a customer's rows. Not partitioned:
-- triggered_at can move (when a late fact moves the alert's episode), and a replaced row must stay in the
-- partition of the row it replaces.
CREATE TABLE IF NOT EXISTS {db}.alert_outcomes
(
    alert_id     String,
    customer_key String,
    triggered_at DateTime,
    outcome      Enum8('pending' = 0, 'recovered' = 1, 'relapsed' = 2, 'lost' = 3),
    decided      UInt8,
    outcome_at   Nullable(DateTime),
    version      UInt64,
    updated_at   DateTime
)
ENGINE = ReplacingMergeTree(version)
ORDER BY alert_id
