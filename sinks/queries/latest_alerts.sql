-- The latest churn-risk alerts and why: the experiences and signals, under the customer today
-- (an alert raised under a key that merged later shows under the customer: churn_alerts_resolved).
SELECT triggered_at, customer_key, dissatisfied_90d, experience_keys, signals, lifetime_value
FROM {db}.churn_alerts_resolved
ORDER BY triggered_at DESC, alert_id
LIMIT 100
