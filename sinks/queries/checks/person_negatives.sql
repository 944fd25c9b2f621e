-- A person's strikes: for each customer key (merged keys resolved), the first-negative time of each
-- experience, as the array `negs`. Every check that recounts strikes reads it as {person_negatives}.
SELECT customer_key, groupArray(first_neg) AS negs
FROM
(
    SELECT customer_key, experience_key, min(toUInt32(occurred_at)) AS first_neg
    FROM {db}.experience_signals_resolved
    WHERE polarity = -1
    GROUP BY customer_key, experience_key
)
GROUP BY customer_key
