-- High-risk customers by lifetime value, with the experiences and signals of their latest alert.
SELECT customer_key, lifetime_value, dissatisfied_90d AS strikes, experience_score AS score,
       experience_keys AS experiences, signals
FROM
(
    SELECT customer_key, lifetime_value, dissatisfied_90d, experience_score
    FROM {db}.customer_experience FINAL
    WHERE merged_into = '' AND churn_risk = 'high'
) AS customers
ANY LEFT JOIN
(
    SELECT customer_key, argMax(experience_keys, triggered_at) AS experience_keys,
           argMax(signals, triggered_at) AS signals
    FROM {db}.churn_alerts FINAL
    GROUP BY customer_key
) AS latest_alert USING (customer_key)
ORDER BY lifetime_value DESC, customer_key
LIMIT 20
