-- The ClickHouse-current variant of 0009_alert_actions.sql (sinks/migrate.py picks it on servers after 18.x):
-- the same columns and views; only the joined subqueries are named, as current servers require (see 0007).

-- Recovery actions on every churn alert (issue 17; docs/contract.md, "Recovery"): the playbook's action ids,
-- most urgent first, and their texts as the agent reads them. Alerts written before have none.
-- The per-customer copy and the per-person view take them too: both name their columns, so they are
-- recreated (an alert inserted while its view is being recreated misses alerts_by_customer: migrate with
-- the workers stopped: `cxj migrate`, then start them).
ALTER TABLE {db}.churn_alerts ADD COLUMN actions Array(String) DEFAULT emptyArrayString();
ALTER TABLE {db}.churn_alerts ADD COLUMN action_texts Array(String) DEFAULT emptyArrayString();
ALTER TABLE {db}.alerts_by_customer ADD COLUMN actions Array(String) DEFAULT emptyArrayString();
ALTER TABLE {db}.alerts_by_customer ADD COLUMN action_texts Array(String) DEFAULT emptyArrayString();

DROP TABLE IF EXISTS {db}.alerts_by_customer_mv;

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.alerts_by_customer_mv TO {db}.alerts_by_customer AS
SELECT customer_key, alert_id, level, dissatisfied_90d, experience_keys, signals, dimensions, triggered_at,
       actions, action_texts
FROM {db}.churn_alerts;

DROP TABLE IF EXISTS {db}.churn_alerts_resolved;

CREATE VIEW IF NOT EXISTS {db}.churn_alerts_resolved AS
SELECT
    alert_id,
    if(resolved_key = '', stitched_key, resolved_key) AS customer_key,
    stitched_key,
    level, previous_level, dissatisfied_90d, experience_keys, signals, dimensions, triggered_at,
    lifetime_value, emitted_at, actions, action_texts
FROM
(
    SELECT *, customer_key AS stitched_key FROM {db}.churn_alerts FINAL
) AS stitched
ANY LEFT JOIN
(
    SELECT stitched_key, argMax(customer_key, version) AS resolved_key
    FROM {db}.identity_overrides
    GROUP BY stitched_key
) AS overrides USING (stitched_key)
