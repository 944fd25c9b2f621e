-- Live customers at churn_risk 'high' with no alert standing for their current episode. Alerts raised
-- under keys merged into the customer count (churn_alerts_resolved). The latest alert stands for the
-- current episode unless the recounted strikes fell below three between it and the latest event.
-- Anonymous keys updated within the alert hold may still be holding theirs, and are skipped.
SELECT count() AS failures, any(customer_key) AS example
FROM
(
    SELECT customer_key, t, updated_at, last_alert, negs
    FROM
    (
        SELECT customer_key, t, updated_at, last_alert
        FROM
        (
            SELECT customer_key, toUInt32(last_event_at) AS t, updated_at
            FROM {db}.customer_experience FINAL
            WHERE churn_risk = 'high' AND merged_into = ''
        ) AS customers
        ANY LEFT JOIN
        (
            SELECT customer_key, max(toUInt32(triggered_at)) AS last_alert
            FROM {db}.churn_alerts_resolved
            GROUP BY customer_key
        ) AS alerts USING (customer_key)
    ) AS alerted
    ANY LEFT JOIN
    ({person_negatives}) AS negatives USING (customer_key)
)
WHERE NOT (startsWith(customer_key, '~') AND updated_at > now() - %(hold)s)
  AND (last_alert = 0
       OR arrayExists((f, all, la, tt) -> f + %(window)s > la + 1 AND f + %(window)s < tt - 1
                                          AND arrayCount(g -> g >= f AND g <= f + %(window)s + 1, all) - 1 < 3,
                      negs, arrayResize([negs], length(negs), negs), arrayResize([last_alert], length(negs), last_alert),
                      arrayResize([t], length(negs), t)))
