-- Satisfaction as analysts measure it, by week and channel of the response: CSAT (share of 4-5, %), NPS
-- (promoters 9-10 minus detractors 0-6, in points), CES (mean of 1-7, 7 = very easy, and the share of easy
-- answers 5-7, %), each with the number of responses behind it (NULL where there is none).
SELECT toMonday(occurred_at) AS week, channel,
       countIf(isNotNull(csat)) AS csat_responses,
       if(csat_responses = 0, NULL, round(100 * countIf(ifNull(csat, 0) >= 4) / csat_responses, 1)) AS csat_pct,
       countIf(isNotNull(nps)) AS nps_responses,
       if(nps_responses = 0, NULL, round(100 * (countIf(ifNull(nps, 0) >= 9)
          - countIf(isNotNull(nps) AND ifNull(nps, 10) <= 6)) / nps_responses, 1)) AS nps_points,
       countIf(isNotNull(ces)) AS ces_responses,
       if(ces_responses = 0, NULL, round(sumIf(ifNull(ces, 0), isNotNull(ces)) / ces_responses, 2)) AS ces_mean,
       if(ces_responses = 0, NULL, round(100 * countIf(ifNull(ces, 0) >= 5) / ces_responses, 1)) AS ces_easy_pct
FROM {db}.touchpoints FINAL
WHERE occurred_at >= now() - 90 * 86400 AND (isNotNull(csat) OR isNotNull(nps) OR isNotNull(ces))
GROUP BY week, channel
ORDER BY week, channel
