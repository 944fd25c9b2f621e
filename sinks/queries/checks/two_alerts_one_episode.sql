-- People with two alerts for one high episode: consecutive alerts (after resolving merged keys) with no
-- instant between them where the recounted strikes fell below three. Two keys that each crossed before
-- anything linked them, and alerted before the merge (plus the hold), are the known exception: alerts
-- are never taken back, so they are not counted here (docs/contract.md, alerts per person).
SELECT count() AS failures, any(customer_key) AS example
FROM
(
    SELECT customer_key, alerts, negs
    FROM
    (
        SELECT customer_key, arraySort(a -> a.1, groupArray((toUInt32(triggered_at), stitched_key,
               toUInt32(emitted_at), merged_at))) AS alerts
        FROM
        (
            SELECT *
            FROM {db}.churn_alerts_resolved
            ANY LEFT JOIN
            (
                SELECT stitched_key, toUInt32(min(merged_at)) AS merged_at
                FROM {db}.identity_overrides
                GROUP BY stitched_key
            ) AS merges USING (stitched_key)
        )
        GROUP BY customer_key
        HAVING count() > 1
    ) AS alerted
    ANY INNER JOIN
    ({person_negatives}) AS negatives USING (customer_key)
)
WHERE arrayExists(
    (i, al, ng) -> i > 1
        AND NOT arrayExists(f -> f + %(window)s > al[i - 1].1 - 1 AND f + %(window)s <= al[i].1 + 1
                                 AND arrayCount(g -> g > f + 1 AND g < f + %(window)s, ng) < 3, ng)
        AND NOT (al[i - 1].2 != al[i].2
                 AND greatest(al[i - 1].3, al[i].3) <= greatest(al[i - 1].4, al[i].4) + %(hold)s + 10),
    arrayEnumerate(alerts), arrayResize([alerts], length(alerts), alerts), arrayResize([negs], length(alerts), negs))
