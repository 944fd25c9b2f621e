-- Live customers whose dissatisfied_90d is not what experience_signals gives: distinct experiences of
-- the person (merged keys resolved) whose first negative signal lies in (t - window, t], t the
-- latest event. Whole seconds: the recount is a range, and only a value outside it fails.
SELECT count() AS failures, any(customer_key) AS example
FROM
(
    SELECT customer_key, dissatisfied_90d, t, negs
    FROM
    (
        SELECT customer_key, dissatisfied_90d, toUInt32(last_event_at) AS t
        FROM {db}.customer_experience FINAL
        WHERE merged_into = ''
    ) AS customers
    ANY LEFT JOIN
    ({person_negatives}) AS negatives USING (customer_key)
)
WHERE dissatisfied_90d < arrayCount((g, tt) -> g >= tt - %(window)s + 1 AND g <= tt, negs,
                                    arrayResize([t], length(negs), t))
   OR dissatisfied_90d > arrayCount((g, tt) -> g >= tt - %(window)s AND g <= tt + 1, negs,
                                    arrayResize([t], length(negs), t))
