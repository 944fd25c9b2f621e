-- Churn alerts without an outcome (issue 17): the stage starts watching every alert it raises and writes
-- its first alert_outcomes row (pending, or already decided) in the flush that stores the alert. Alerts
-- emitted before migration 0010 was applied had no watch and are not counted.
SELECT count() AS failures, any(customer_key) AS example
FROM {db}.churn_alerts FINAL
WHERE emitted_at >= (SELECT min(applied_at) FROM {db}.schema_migrations WHERE version = 10)
  AND alert_id NOT IN (SELECT alert_id FROM {db}.alert_outcomes)
