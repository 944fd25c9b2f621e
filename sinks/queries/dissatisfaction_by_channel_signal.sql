-- Dissatisfying experiences by channel and signal over the last 90 days (rollup: signals_hourly).
SELECT channel, signal, dimension, uniqExactMerge(experiences) AS experiences,
       uniqExactMerge(touchpoints) AS touchpoints, uniqExactMerge(customers) AS customers
FROM {db}.signals_hourly
WHERE polarity = -1 AND hour >= now() - 90 * 86400
GROUP BY channel, signal, dimension
ORDER BY experiences DESC
