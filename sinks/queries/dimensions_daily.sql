-- The nine experience dimensions per day: dissatisfying and satisfying experiences (rollup: signals_hourly).
SELECT toDate(hour) AS day, dimension,
       uniqExactMergeIf(experiences, polarity = -1) AS negative,
       uniqExactMergeIf(experiences, polarity = 1) AS positive
FROM {db}.signals_hourly
WHERE hour >= now() - 90 * 86400
GROUP BY day, dimension
ORDER BY day, dimension
