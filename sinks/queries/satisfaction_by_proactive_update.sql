-- Does telling customers before they ask pay? Satisfaction of people (merged keys resolved) who got a proactive
-- update (a notification_sent touchpoint) against those who did not, over the last 90 days: customers,
-- responses, CSAT (%) and NPS (points).
SELECT updated AS proactive_update,
       uniqExact(customer_key) AS customers,
       countIf(isNotNull(csat)) AS csat_responses,
       if(csat_responses = 0, NULL, round(100 * countIf(ifNull(csat, 0) >= 4) / csat_responses, 1)) AS csat_pct,
       countIf(isNotNull(nps)) AS nps_responses,
       if(nps_responses = 0, NULL, round(100 * (countIf(ifNull(nps, 0) >= 9)
          - countIf(isNotNull(nps) AND ifNull(nps, 10) <= 6)) / nps_responses, 1)) AS nps_points
FROM
(
    SELECT customer_key, csat, nps
    FROM {db}.touchpoints_resolved
    WHERE occurred_at >= now() - 90 * 86400 AND (isNotNull(csat) OR isNotNull(nps))
) AS responses
ANY LEFT JOIN
(
    SELECT customer_key, 1 AS updated
    FROM {db}.touchpoints_resolved
    WHERE occurred_at >= now() - 90 * 86400 AND event_type = 'notification_sent'
    GROUP BY customer_key
) AS informed USING (customer_key)
GROUP BY updated
ORDER BY updated
