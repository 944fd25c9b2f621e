-- Customers by churn risk now, with their average experience score and lifetime value.
SELECT churn_risk, count() AS customers, round(avg(experience_score), 1) AS avg_score,
       round(sum(lifetime_value), 2) AS lifetime_value
FROM {db}.customer_experience FINAL
WHERE merged_into = ''
GROUP BY churn_risk
ORDER BY churn_risk DESC
