-- Satisfaction by the dimension of the experience a response rates (the dimensions of that experience's
-- other signals: a survey about a call nobody answered counts under respect; 'none' when it had none),
-- over the last 90 days: CSAT (%), NPS (points), CES (mean) and the responses behind each.
SELECT dimension,
       countIf(isNotNull(csat)) AS csat_responses,
       if(csat_responses = 0, NULL, round(100 * countIf(ifNull(csat, 0) >= 4) / csat_responses, 1)) AS csat_pct,
       countIf(isNotNull(nps)) AS nps_responses,
       if(nps_responses = 0, NULL, round(100 * (countIf(ifNull(nps, 0) >= 9)
          - countIf(isNotNull(nps) AND ifNull(nps, 10) <= 6)) / nps_responses, 1)) AS nps_points,
       countIf(isNotNull(ces)) AS ces_responses,
       if(ces_responses = 0, NULL, round(sumIf(ifNull(ces, 0), isNotNull(ces)) / ces_responses, 2)) AS ces_mean
FROM
(
    SELECT csat, nps, ces, arrayJoin(if(empty(dims), ['none'], dims)) AS dimension
    FROM
    (
        SELECT customer_key, experience_key, csat, nps, ces
        FROM {db}.touchpoints FINAL
        WHERE occurred_at >= now() - 90 * 86400 AND (isNotNull(csat) OR isNotNull(nps) OR isNotNull(ces))
    ) AS responses
    ANY LEFT JOIN
    (
        SELECT customer_key, experience_key, groupUniqArray(dimension) AS dims
        FROM {db}.experience_signals FINAL
        WHERE dimension != 'evaluation'
        GROUP BY customer_key, experience_key
    ) AS rated USING (customer_key, experience_key)
)
GROUP BY dimension
ORDER BY dimension
