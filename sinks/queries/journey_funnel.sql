-- Journeys by type and status, with their average size and share dissatisfying (rollup: journey_funnel).
SELECT journey_type, status, count() AS journeys, round(avg(touchpoints), 2) AS avg_touchpoints,
       round(avg(dissatisfying), 3) AS dissatisfying_share
FROM
(
    SELECT journey_type, journey_id, argMaxMerge(status) AS status, argMaxMerge(merged_into) AS merged,
           argMaxMerge(touchpoints) AS touchpoints, argMaxMerge(dissatisfying) AS dissatisfying
    FROM {db}.journey_funnel
    GROUP BY journey_type, journey_id
)
WHERE merged = ''
GROUP BY journey_type, status
ORDER BY journey_type, status
