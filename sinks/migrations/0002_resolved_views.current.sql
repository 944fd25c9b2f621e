-- The ClickHouse-current variant of 0002_resolved_views.sql (sinks/migrate.py picks it on servers after 18.x).
-- The same views; only the joined subqueries are named (`AS stitched`, `AS overrides`): current servers refuse
-- an unnamed subquery in a JOIN (code 206, joined_subquery_requires_alias), and 0002_resolved_views.sql cannot
-- change, since deployments on 18.16 recorded its checksum.

-- touchpoints_resolved: the touchpoints with customer_key resolved through identity links.
-- Only keys that moved (identity_overrides) are joined, never every identifier ever seen.
-- FINAL inside: a view cannot be read with FINAL, and these reads must be exact.

CREATE VIEW IF NOT EXISTS {db}.touchpoints_resolved AS
SELECT
    event_id,
    if(resolved_key = '', stitched_key, resolved_key) AS customer_key,
    stitched_key,
    channel, event_type, occurred_at, occurred_ms, received_at, source, experience_key,
    journey_id, signals, customer_id, anonymous_id, device_id, phone_hash, email_hash,
    wechat_openid, order_id, case_id, contact_id, session_id, agent_id, store_id,
    wait_seconds, transfers, handled_by, resolved, csat, nps, ces, rating, sentiment, amount,
    currency, attributes, schema_version
FROM
(
    SELECT *, customer_key AS stitched_key FROM {db}.touchpoints FINAL
) AS stitched
ANY LEFT JOIN
(
    SELECT stitched_key, argMax(customer_key, version) AS resolved_key
    FROM {db}.identity_overrides
    GROUP BY stitched_key
) AS overrides USING (stitched_key);

CREATE VIEW IF NOT EXISTS {db}.experience_signals_resolved AS
SELECT
    event_id,
    if(resolved_key = '', stitched_key, resolved_key) AS customer_key,
    stitched_key,
    experience_key, signal, polarity, dimension, channel, event_type, occurred_at, journey_id
FROM
(
    SELECT *, customer_key AS stitched_key FROM {db}.experience_signals FINAL
) AS stitched
ANY LEFT JOIN
(
    SELECT stitched_key, argMax(customer_key, version) AS resolved_key
    FROM {db}.identity_overrides
    GROUP BY stitched_key
) AS overrides USING (stitched_key);
