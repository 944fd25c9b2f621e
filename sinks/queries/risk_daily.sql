-- Daily risk distribution of the customers whose state changed that day (rollup: risk_daily).
SELECT day, level, count() AS customers
FROM
(
    SELECT day, customer_key, argMaxMerge(churn_risk) AS level, argMaxMerge(merged_into) AS merged
    FROM {db}.risk_daily
    WHERE day >= today() - 90
    GROUP BY day, customer_key
)
WHERE merged = ''
GROUP BY day, level
ORDER BY day, level
