-- Per-customer copies for the customer profile (`GET /v1/customers/{id}`, `cxj customer`): the same rows as
-- touchpoints, experience_signals, journeys and churn_alerts, ordered by customer_key so one person's rows are a range of
-- the primary key, not a scan of every customer's, in granules of 256 rows (a profile reads a few hundred
-- rows, not 8,192 per key). Kept by materialized views on every insert; replaced like their sources (a
-- replayed insert changes nothing once merged; reads use FINAL). Narrow: only what a profile shows.
-- `cxj forget` deletes from them like from their sources.

CREATE TABLE IF NOT EXISTS {db}.touchpoints_by_customer
(
    customer_key String,
    occurred_at  DateTime,
    event_id     String,
    channel      String,
    event_type   String,
    source       String,
    signals      Array(String),
    journey_id   String
)
ENGINE = ReplacingMergeTree
ORDER BY (customer_key, occurred_at, event_id)
SETTINGS index_granularity = 256;

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.touchpoints_by_customer_mv TO {db}.touchpoints_by_customer AS
SELECT customer_key, occurred_at, event_id, channel, event_type, source, signals, journey_id
FROM {db}.touchpoints;

INSERT INTO {db}.touchpoints_by_customer
SELECT customer_key, occurred_at, event_id, channel, event_type, source, signals, journey_id
FROM {db}.touchpoints;

CREATE TABLE IF NOT EXISTS {db}.signals_by_customer
(
    customer_key   String,
    experience_key String,
    signal         String,
    occurred_at    DateTime,
    event_id       String,
    polarity       Int8,
    dimension      String,
    channel        String
)
ENGINE = ReplacingMergeTree
ORDER BY (customer_key, experience_key, signal, occurred_at, event_id)
SETTINGS index_granularity = 256;

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.signals_by_customer_mv TO {db}.signals_by_customer AS
SELECT customer_key, experience_key, signal, occurred_at, event_id, polarity, dimension, channel
FROM {db}.experience_signals;

INSERT INTO {db}.signals_by_customer
SELECT customer_key, experience_key, signal, occurred_at, event_id, polarity, dimension, channel
FROM {db}.experience_signals;

CREATE TABLE IF NOT EXISTS {db}.journeys_by_customer
(
    customer_key  String,
    journey_id    String,
    journey_type  Enum8('purchase' = 1, 'service' = 2, 'browse' = 3),
    status        Enum8('open' = 1, 'completed' = 2, 'abandoned' = 3),
    started_at    DateTime,
    last_event_at DateTime,
    touchpoints   UInt32,
    channels      Array(String),
    dissatisfying UInt8,
    merged_into   String,
    version       UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY (customer_key, journey_id)
SETTINGS index_granularity = 256;

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.journeys_by_customer_mv TO {db}.journeys_by_customer AS
SELECT customer_key, journey_id, journey_type, status, started_at, last_event_at, touchpoints, channels,
       dissatisfying, merged_into, version
FROM {db}.journeys;

INSERT INTO {db}.journeys_by_customer
SELECT customer_key, journey_id, journey_type, status, started_at, last_event_at, touchpoints, channels,
       dissatisfying, merged_into, version
FROM {db}.journeys;

CREATE TABLE IF NOT EXISTS {db}.alerts_by_customer
(
    customer_key     String,
    alert_id         String,
    level            Enum8('none' = 0, 'low' = 1, 'elevated' = 2, 'high' = 3),
    dissatisfied_90d UInt32,
    experience_keys  Array(String),
    signals          Array(String),
    dimensions       Array(String),
    triggered_at     DateTime
)
ENGINE = ReplacingMergeTree
ORDER BY (customer_key, alert_id)
SETTINGS index_granularity = 256;

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.alerts_by_customer_mv TO {db}.alerts_by_customer AS
SELECT customer_key, alert_id, level, dissatisfied_90d, experience_keys, signals, dimensions, triggered_at
FROM {db}.churn_alerts;

INSERT INTO {db}.alerts_by_customer
SELECT customer_key, alert_id, level, dissatisfied_90d, experience_keys, signals, dimensions, triggered_at
FROM {db}.churn_alerts;
