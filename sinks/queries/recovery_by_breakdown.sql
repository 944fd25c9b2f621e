-- Recovery after churn alerts (issue 17): of the alerts whose outcome is decided (the window of
-- CXJ_RECOVERY_DAYS passed, or a relapse), how many recovered, relapsed, were lost or stayed pending, by
-- the alert's first signal (of its earliest dissatisfying experience), that signal's channel, each of the
-- alert's dimensions and each recommended action; `watching` counts alerts still in their window.
-- recovery_pct = recovered / decided. An alert counts once under each breakdown value it has.
SELECT breakdown, value,
       count() AS alerts,
       countIf(decided = 1) AS decided_alerts,
       countIf(decided = 1 AND outcome = 'recovered') AS recovered,
       countIf(outcome = 'relapsed') AS relapsed,
       countIf(outcome = 'lost') AS lost,
       countIf(decided = 1 AND outcome = 'pending') AS unresolved,
       countIf(decided = 0) AS watching,
       if(decided_alerts = 0, NULL, round(100 * recovered / decided_alerts, 1)) AS recovery_pct
FROM
(
    SELECT outcome, decided, part.1 AS breakdown, part.2 AS value
    FROM
    (
        SELECT alert_id, any(outcome) AS outcome, any(decided) AS decided, any(dims) AS dims, any(acts) AS acts,
               argMinIf(signal, first_at, signal != '') AS first_signal,
               argMinIf(channel, first_at, signal != '') AS first_channel
        FROM
        (
            SELECT alert_id, outcome, decided, dims, acts, experience_key
            FROM
            (
                SELECT alert_id, dimensions AS dims, actions AS acts, experience_key
                FROM {db}.churn_alerts FINAL
                ARRAY JOIN experience_keys AS experience_key
            ) AS alerts
            ANY INNER JOIN
            (
                SELECT alert_id, toString(outcome) AS outcome, decided FROM {db}.alert_outcomes FINAL
            ) AS outcomes USING (alert_id)
        ) AS experiences
        ANY LEFT JOIN
        (
            SELECT experience_key, argMin(signal, occurred_at) AS signal, argMin(channel, occurred_at) AS channel,
                   min(occurred_at) AS first_at
            FROM {db}.experience_signals FINAL
            WHERE polarity < 0
            GROUP BY experience_key
        ) AS firsts USING (experience_key)
        GROUP BY alert_id
    )
    ARRAY JOIN arrayConcat([('first_signal', first_signal), ('channel', first_channel)],
                           arrayMap(d -> ('dimension', d), dims), arrayMap(a -> ('action', a), acts)) AS part
    WHERE value != ''
)
GROUP BY breakdown, value
ORDER BY breakdown, decided_alerts DESC, value
