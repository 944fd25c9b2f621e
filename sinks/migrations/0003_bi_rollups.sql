-- BI rollups, kept current by materialized views on every insert (portable: ClickHouse 18.16 and current).
-- Aggregates are distinct counts and argMax states, so a replayed insert (the pipeline retries, and
-- replays after a crash) changes nothing: exactly-once results from at-least-once inserts.
-- Each view is created before its backfill, and the backfill is idempotent for the same reason.

-- Hourly experience by channel x signal x dimension.
CREATE TABLE IF NOT EXISTS {db}.signals_hourly
(
    hour        DateTime,
    channel     String,
    signal      String,
    dimension   String,
    polarity    Int8,
    touchpoints AggregateFunction(uniqExact, String),
    experiences AggregateFunction(uniqExact, String),
    customers   AggregateFunction(uniqExact, String)
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(hour)
ORDER BY (hour, channel, signal, dimension, polarity);

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.signals_hourly_mv TO {db}.signals_hourly AS
SELECT
    toStartOfHour(occurred_at) AS hour, channel, signal, dimension, polarity,
    uniqExactState(event_id) AS touchpoints,
    uniqExactState(experience_key) AS experiences,
    uniqExactState(customer_key) AS customers
FROM {db}.experience_signals
GROUP BY hour, channel, signal, dimension, polarity;

INSERT INTO {db}.signals_hourly
SELECT
    toStartOfHour(occurred_at) AS hour, channel, signal, dimension, polarity,
    uniqExactState(event_id), uniqExactState(experience_key), uniqExactState(customer_key)
FROM {db}.experience_signals
GROUP BY hour, channel, signal, dimension, polarity;

-- Daily risk: each customer's last level on each day its state changed.
CREATE TABLE IF NOT EXISTS {db}.risk_daily
(
    day          Date,
    customer_key String,
    churn_risk   AggregateFunction(argMax, Enum8('none' = 0, 'low' = 1, 'elevated' = 2, 'high' = 3), UInt64),
    merged_into  AggregateFunction(argMax, String, UInt64),
    score        AggregateFunction(argMax, Float32, UInt64)
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(day)
ORDER BY (day, customer_key);

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.risk_daily_mv TO {db}.risk_daily AS
SELECT
    toDate(updated_at) AS day, customer_key,
    argMaxState(churn_risk, version) AS churn_risk,
    argMaxState(merged_into, version) AS merged_into,
    argMaxState(experience_score, version) AS score
FROM {db}.customer_experience
GROUP BY day, customer_key;

INSERT INTO {db}.risk_daily
SELECT
    toDate(updated_at) AS day, customer_key,
    argMaxState(churn_risk, version), argMaxState(merged_into, version), argMaxState(experience_score, version)
FROM {db}.customer_experience
GROUP BY day, customer_key;

-- Journey funnel: each journey's latest type, status and size, by the day it started.
CREATE TABLE IF NOT EXISTS {db}.journey_funnel
(
    journey_id   String,
    journey_type Enum8('purchase' = 1, 'service' = 2, 'browse' = 3),
    status       AggregateFunction(argMax, Enum8('open' = 1, 'completed' = 2, 'abandoned' = 3), UInt64),
    merged_into  AggregateFunction(argMax, String, UInt64),
    started      AggregateFunction(min, DateTime),
    touchpoints  AggregateFunction(argMax, UInt32, UInt64),
    dissatisfying AggregateFunction(argMax, UInt8, UInt64)
)
ENGINE = AggregatingMergeTree
ORDER BY (journey_type, journey_id);

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.journey_funnel_mv TO {db}.journey_funnel AS
SELECT
    journey_id, journey_type,
    argMaxState(status, version) AS status,
    argMaxState(merged_into, version) AS merged_into,
    minState(started_at) AS started,
    argMaxState(touchpoints, version) AS touchpoints,
    argMaxState(dissatisfying, version) AS dissatisfying
FROM {db}.journeys
GROUP BY journey_id, journey_type;

INSERT INTO {db}.journey_funnel
SELECT
    journey_id, journey_type, argMaxState(status, version), argMaxState(merged_into, version),
    minState(started_at), argMaxState(touchpoints, version), argMaxState(dissatisfying, version)
FROM {db}.journeys
GROUP BY journey_id, journey_type;
