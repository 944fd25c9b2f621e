-- The ClickHouse-current variant of 0007_per_person.sql (sinks/migrate.py picks it on servers after 18.x).
-- The same views and rewrite; only the joined subqueries are named (`AS stitched`, `AS overrides`): current
-- servers refuse an unnamed subquery in a JOIN (code 206, joined_subquery_requires_alias), and
-- 0007_per_person.sql cannot change, since deployments on 18.16 recorded its checksum.

-- Per person (docs/contract.md, "Alerts and journeys per person"): alerts and journeys raised under a
-- key that later merged belong to the customer it merged into. The resolved views show them there,
-- as touchpoints_resolved does for touchpoints; only keys that moved (identity_overrides) are joined.

CREATE VIEW IF NOT EXISTS {db}.churn_alerts_resolved AS
SELECT
    alert_id,
    if(resolved_key = '', stitched_key, resolved_key) AS customer_key,
    stitched_key,
    level, previous_level, dissatisfied_90d, experience_keys, signals, dimensions, triggered_at,
    lifetime_value, emitted_at
FROM
(
    SELECT *, customer_key AS stitched_key FROM {db}.churn_alerts FINAL
) AS stitched
ANY LEFT JOIN
(
    SELECT stitched_key, argMax(customer_key, version) AS resolved_key
    FROM {db}.identity_overrides
    GROUP BY stitched_key
) AS overrides USING (stitched_key);

CREATE VIEW IF NOT EXISTS {db}.journeys_resolved AS
SELECT
    journey_id,
    if(resolved_key = '', stitched_key, resolved_key) AS customer_key,
    stitched_key,
    journey_type, status, started_at, ended_at, last_event_at, touchpoints, channels, dissatisfying,
    merged_into, version, updated_at
FROM
(
    SELECT *, customer_key AS stitched_key FROM {db}.journeys FINAL
) AS stitched
ANY LEFT JOIN
(
    SELECT stitched_key, argMax(customer_key, version) AS resolved_key
    FROM {db}.identity_overrides
    GROUP BY stitched_key
) AS overrides USING (stitched_key);

-- Journey ids are now `<anchor>@<customer_key>` (unique per customer). Rows written before keep
-- their journey under the new id, and the old id is retired with a pointer to it, so nothing is
-- counted twice when the worker writes the journey again under the new id.
INSERT INTO {db}.journeys
SELECT
    concat(journey_id, '@', customer_key), customer_key, journey_type, status, started_at, ended_at,
    last_event_at, touchpoints, channels, dissatisfying,
    if(merged_into IN ('', 'merged'), merged_into, concat(merged_into, '@', customer_key)),
    version, updated_at
FROM {db}.journeys FINAL
WHERE position(journey_id, '@') = 0 AND position(merged_into, '@') = 0;

INSERT INTO {db}.journeys
SELECT
    journey_id, customer_key, journey_type, 'abandoned', started_at, ended_at, last_event_at,
    0, [], 0, concat(journey_id, '@', customer_key), version + 1, updated_at
FROM {db}.journeys FINAL
WHERE position(journey_id, '@') = 0 AND position(merged_into, '@') = 0;
