-- Does a proactive update after a churn alert help? Alerts whose customer (merged keys resolved) got a
-- notification_sent in the 30 days after the alert (CXJ_RECOVERY_DAYS' default) against those whose did
-- not: alerts, decided, recovered, recovery rate (% of decided). The NPS half of the question is
-- satisfaction_by_proactive_update.sql. (18.16's lambdas cannot read a joined column: the alert's time goes in
-- as an array, once per update.)
SELECT informed AS proactive_update,
       count() AS alerts,
       countIf(decided = 1) AS decided_alerts,
       countIf(decided = 1 AND outcome = 'recovered') AS recovered,
       if(decided_alerts = 0, NULL, round(100 * recovered / decided_alerts, 1)) AS recovery_pct
FROM
(
    SELECT toString(outcome) AS outcome, decided,
           toUInt8(arrayExists((t, at) -> t > at AND t <= at + 30 * 86400, updates,
                               arrayResize([triggered_at], length(updates), triggered_at))) AS informed
    FROM
    (
        SELECT alert_id, customer_key, triggered_at, outcome, decided FROM {db}.alert_outcomes FINAL
    ) AS outcomes
    ANY LEFT JOIN
    (
        SELECT customer_key, groupArray(occurred_at) AS updates
        FROM {db}.touchpoints_resolved
        WHERE event_type = 'notification_sent'
        GROUP BY customer_key
    ) AS notified USING (customer_key)
)
GROUP BY informed
ORDER BY informed
