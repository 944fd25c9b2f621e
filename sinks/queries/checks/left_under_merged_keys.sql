-- Alerts and live journeys (merged_into = '') stored under a key that merged into another, when no
-- identity override resolves that key: the resolved views would leave them with nobody.
SELECT count() AS failures, any(key) AS example
FROM
(
    SELECT customer_key AS key FROM {db}.churn_alerts FINAL
    UNION ALL
    SELECT customer_key AS key FROM {db}.journeys FINAL WHERE merged_into = ''
)
WHERE key IN (SELECT customer_key FROM {db}.customer_experience FINAL WHERE merged_into != '')
  AND key NOT IN (SELECT stitched_key FROM {db}.identity_overrides)
