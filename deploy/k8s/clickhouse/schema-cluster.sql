-- cx-journeys schema for ClickHouse cluster 'cx', database cx: generated from sinks/migrations by `cxj schema cluster`; do not edit.
CREATE DATABASE IF NOT EXISTS cx ON CLUSTER 'cx';

CREATE TABLE IF NOT EXISTS cx.touchpoints_local ON CLUSTER 'cx'
(
    event_id       String,
    customer_key   String,
    channel        String,
    event_type     String,
    occurred_at    DateTime,
    occurred_ms    UInt64,
    received_at    DateTime,
    source         String,
    experience_key String,
    journey_id     String,
    signals        Array(String),
    customer_id    String,
    anonymous_id   String,
    device_id      String,
    phone_hash     String,
    email_hash     String,
    wechat_openid  String,
    order_id       String,
    case_id        String,
    contact_id     String,
    session_id     String,
    agent_id       String,
    store_id       String,
    wait_seconds   Nullable(Float64),
    transfers      Nullable(UInt16),
    handled_by     String,
    resolved       Nullable(UInt8),
    csat           Nullable(UInt8),
    nps            Nullable(UInt8),
    ces            Nullable(UInt8),
    rating         Nullable(UInt8),
    sentiment      Nullable(Float32),
    amount         Nullable(Float64),
    currency       String,
    attributes     String,
    schema_version UInt8,
    inserted_at    DateTime DEFAULT now()
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/cx/touchpoints', '{replica}')
PARTITION BY toYYYYMM(occurred_at)
ORDER BY (channel, occurred_at, event_id);

CREATE TABLE IF NOT EXISTS cx.touchpoints ON CLUSTER 'cx' AS cx.touchpoints_local
ENGINE = Distributed('cx', 'cx', 'touchpoints_local', cityHash64(event_id));

CREATE TABLE IF NOT EXISTS cx.experience_signals_local ON CLUSTER 'cx'
(
    event_id       String,
    customer_key   String,
    experience_key String,
    signal         String,
    polarity       Int8,
    dimension      String,
    channel        String,
    event_type     String,
    occurred_at    DateTime,
    journey_id     String,
    inserted_at    DateTime DEFAULT now()
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/cx/experience_signals', '{replica}')
PARTITION BY toYYYYMM(occurred_at)
ORDER BY (signal, occurred_at, event_id);

CREATE TABLE IF NOT EXISTS cx.experience_signals ON CLUSTER 'cx' AS cx.experience_signals_local
ENGINE = Distributed('cx', 'cx', 'experience_signals_local', cityHash64(event_id));

CREATE TABLE IF NOT EXISTS cx.customer_experience_local ON CLUSTER 'cx'
(
    customer_key     String,
    dissatisfied_90d UInt32,
    satisfied_90d    UInt32,
    experience_score Float32,
    churn_risk       Enum8('none' = 0, 'low' = 1, 'elevated' = 2, 'high' = 3),
    last_event_at    DateTime,
    version          UInt64,
    lifetime_value   Float64,
    experiences      UInt32,
    open_journeys    UInt32,
    merged_into      String,
    updated_at       DateTime
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/cx/customer_experience', '{replica}', version)
ORDER BY customer_key;

CREATE TABLE IF NOT EXISTS cx.customer_experience ON CLUSTER 'cx' AS cx.customer_experience_local
ENGINE = Distributed('cx', 'cx', 'customer_experience_local', cityHash64(customer_key));

CREATE TABLE IF NOT EXISTS cx.churn_alerts_local ON CLUSTER 'cx'
(
    alert_id         String,
    customer_key     String,
    level            Enum8('none' = 0, 'low' = 1, 'elevated' = 2, 'high' = 3),
    previous_level   Enum8('none' = 0, 'low' = 1, 'elevated' = 2, 'high' = 3),
    dissatisfied_90d UInt32,
    experience_keys  Array(String),
    signals          Array(String),
    dimensions       Array(String),
    triggered_at     DateTime,
    lifetime_value   Float64,
    emitted_at       DateTime
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/cx/churn_alerts', '{replica}')
PARTITION BY toYYYYMM(triggered_at)
ORDER BY alert_id;

CREATE TABLE IF NOT EXISTS cx.churn_alerts ON CLUSTER 'cx' AS cx.churn_alerts_local
ENGINE = Distributed('cx', 'cx', 'churn_alerts_local', cityHash64(alert_id));

CREATE TABLE IF NOT EXISTS cx.journeys_local ON CLUSTER 'cx'
(
    journey_id    String,
    customer_key  String,
    journey_type  Enum8('purchase' = 1, 'service' = 2, 'browse' = 3),
    status        Enum8('open' = 1, 'completed' = 2, 'abandoned' = 3),
    started_at    DateTime,
    ended_at      Nullable(DateTime),
    last_event_at DateTime,
    touchpoints   UInt32,
    channels      Array(String),
    dissatisfying UInt8,
    merged_into   String,
    version       UInt64,
    updated_at    DateTime
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/cx/journeys', '{replica}', version)
ORDER BY journey_id;

CREATE TABLE IF NOT EXISTS cx.journeys ON CLUSTER 'cx' AS cx.journeys_local
ENGINE = Distributed('cx', 'cx', 'journeys_local', cityHash64(journey_id));

CREATE TABLE IF NOT EXISTS cx.identity_links_local ON CLUSTER 'cx'
(
    identifier      String,
    identifier_type String,
    customer_key    String,
    previous_key    String,
    linked_at       DateTime,
    event_id        String,
    version         UInt64
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/cx/identity_links', '{replica}', version)
ORDER BY identifier;

CREATE TABLE IF NOT EXISTS cx.identity_links ON CLUSTER 'cx' AS cx.identity_links_local
ENGINE = Distributed('cx', 'cx', 'identity_links_local', cityHash64(identifier));

CREATE TABLE IF NOT EXISTS cx.identity_overrides_local ON CLUSTER 'cx'
(
    stitched_key String,
    customer_key String,
    merged_at    DateTime,
    version      UInt64
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/cx/identity_overrides', '{replica}', version)
ORDER BY stitched_key;

CREATE TABLE IF NOT EXISTS cx.identity_overrides ON CLUSTER 'cx' AS cx.identity_overrides_local
ENGINE = Distributed('cx', 'cx', 'identity_overrides_local', cityHash64(stitched_key));

CREATE TABLE IF NOT EXISTS cx.identity_conflicts_local ON CLUSTER 'cx'
(
    identifier   String,
    existing_key String,
    claimed_key  String,
    reason       String,
    event_id     String,
    occurred_at  DateTime,
    detected_at  DateTime
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/cx/identity_conflicts', '{replica}')
ORDER BY (identifier, claimed_key, event_id);

CREATE TABLE IF NOT EXISTS cx.identity_conflicts ON CLUSTER 'cx' AS cx.identity_conflicts_local
ENGINE = Distributed('cx', 'cx', 'identity_conflicts_local', cityHash64(identifier));

CREATE TABLE IF NOT EXISTS cx.dead_letters_local ON CLUSTER 'cx'
(
    received_at DateTime,
    topic       String,
    partition   UInt32,
    offset      UInt64,
    idx         UInt32,
    reason      String,
    detail      String,
    raw         String,
    event_id    String,
    source      String,
    channel     String
)
ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/cx/dead_letters', '{replica}')
PARTITION BY toYYYYMM(received_at)
ORDER BY (topic, partition, offset, idx);

CREATE TABLE IF NOT EXISTS cx.dead_letters ON CLUSTER 'cx' AS cx.dead_letters_local
ENGINE = Distributed('cx', 'cx', 'dead_letters_local', rand());

CREATE VIEW IF NOT EXISTS cx.touchpoints_resolved ON CLUSTER 'cx' AS
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
    SELECT *, customer_key AS stitched_key FROM cx.touchpoints FINAL
) AS stitched
GLOBAL ANY LEFT JOIN
(
    SELECT stitched_key, argMax(customer_key, version) AS resolved_key
    FROM cx.identity_overrides
    GROUP BY stitched_key
) AS overrides USING (stitched_key);

CREATE VIEW IF NOT EXISTS cx.experience_signals_resolved ON CLUSTER 'cx' AS
SELECT
    event_id,
    if(resolved_key = '', stitched_key, resolved_key) AS customer_key,
    stitched_key,
    experience_key, signal, polarity, dimension, channel, event_type, occurred_at, journey_id
FROM
(
    SELECT *, customer_key AS stitched_key FROM cx.experience_signals FINAL
) AS stitched
GLOBAL ANY LEFT JOIN
(
    SELECT stitched_key, argMax(customer_key, version) AS resolved_key
    FROM cx.identity_overrides
    GROUP BY stitched_key
) AS overrides USING (stitched_key);

CREATE TABLE IF NOT EXISTS cx.signals_hourly_local ON CLUSTER 'cx'
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
ENGINE = ReplicatedAggregatingMergeTree('/clickhouse/tables/{shard}/cx/signals_hourly', '{replica}')
PARTITION BY toYYYYMM(hour)
ORDER BY (hour, channel, signal, dimension, polarity);

CREATE TABLE IF NOT EXISTS cx.signals_hourly ON CLUSTER 'cx' AS cx.signals_hourly_local
ENGINE = Distributed('cx', 'cx', 'signals_hourly_local', cityHash64(channel, signal));

CREATE MATERIALIZED VIEW IF NOT EXISTS cx.signals_hourly_mv ON CLUSTER 'cx' TO cx.signals_hourly_local AS
SELECT
    toStartOfHour(occurred_at) AS hour, channel, signal, dimension, polarity,
    uniqExactState(event_id) AS touchpoints,
    uniqExactState(experience_key) AS experiences,
    uniqExactState(customer_key) AS customers
FROM cx.experience_signals_local
GROUP BY hour, channel, signal, dimension, polarity;

CREATE TABLE IF NOT EXISTS cx.risk_daily_local ON CLUSTER 'cx'
(
    day          Date,
    customer_key String,
    churn_risk   AggregateFunction(argMax, Enum8('none' = 0, 'low' = 1, 'elevated' = 2, 'high' = 3), UInt64),
    merged_into  AggregateFunction(argMax, String, UInt64),
    score        AggregateFunction(argMax, Float32, UInt64)
)
ENGINE = ReplicatedAggregatingMergeTree('/clickhouse/tables/{shard}/cx/risk_daily', '{replica}')
PARTITION BY toYYYYMM(day)
ORDER BY (day, customer_key);

CREATE TABLE IF NOT EXISTS cx.risk_daily ON CLUSTER 'cx' AS cx.risk_daily_local
ENGINE = Distributed('cx', 'cx', 'risk_daily_local', cityHash64(customer_key));

CREATE MATERIALIZED VIEW IF NOT EXISTS cx.risk_daily_mv ON CLUSTER 'cx' TO cx.risk_daily_local AS
SELECT
    toDate(updated_at) AS day, customer_key,
    argMaxState(churn_risk, version) AS churn_risk,
    argMaxState(merged_into, version) AS merged_into,
    argMaxState(experience_score, version) AS score
FROM cx.customer_experience_local
GROUP BY day, customer_key;

CREATE TABLE IF NOT EXISTS cx.journey_funnel_local ON CLUSTER 'cx'
(
    journey_id   String,
    journey_type Enum8('purchase' = 1, 'service' = 2, 'browse' = 3),
    status       AggregateFunction(argMax, Enum8('open' = 1, 'completed' = 2, 'abandoned' = 3), UInt64),
    merged_into  AggregateFunction(argMax, String, UInt64),
    started      AggregateFunction(min, DateTime),
    touchpoints  AggregateFunction(argMax, UInt32, UInt64),
    dissatisfying AggregateFunction(argMax, UInt8, UInt64)
)
ENGINE = ReplicatedAggregatingMergeTree('/clickhouse/tables/{shard}/cx/journey_funnel', '{replica}')
ORDER BY (journey_type, journey_id);

CREATE TABLE IF NOT EXISTS cx.journey_funnel ON CLUSTER 'cx' AS cx.journey_funnel_local
ENGINE = Distributed('cx', 'cx', 'journey_funnel_local', cityHash64(journey_id));

CREATE MATERIALIZED VIEW IF NOT EXISTS cx.journey_funnel_mv ON CLUSTER 'cx' TO cx.journey_funnel_local AS
SELECT
    journey_id, journey_type,
    argMaxState(status, version) AS status,
    argMaxState(merged_into, version) AS merged_into,
    minState(started_at) AS started,
    argMaxState(touchpoints, version) AS touchpoints,
    argMaxState(dissatisfying, version) AS dissatisfying
FROM cx.journeys_local
GROUP BY journey_id, journey_type;

CREATE TABLE IF NOT EXISTS cx.erasures_local ON CLUSTER 'cx'
(
    request_id String,
    stage      String,
    item       UInt32,
    partition  Int32,
    expected   UInt32,
    erased     UInt64,
    done_at    DateTime
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/cx/erasures', '{replica}')
ORDER BY (request_id, stage, item);

CREATE TABLE IF NOT EXISTS cx.erasures ON CLUSTER 'cx' AS cx.erasures_local
ENGINE = Distributed('cx', 'cx', 'erasures_local', cityHash64(request_id));

ALTER TABLE cx.dead_letters_local ON CLUSTER 'cx' ADD COLUMN IF NOT EXISTS payload_hash String DEFAULT '';

ALTER TABLE cx.dead_letters ON CLUSTER 'cx' ADD COLUMN IF NOT EXISTS payload_hash String DEFAULT '';

ALTER TABLE cx.dead_letters_local ON CLUSTER 'cx' ADD COLUMN IF NOT EXISTS subjects Array(String) DEFAULT emptyArrayString();

ALTER TABLE cx.dead_letters ON CLUSTER 'cx' ADD COLUMN IF NOT EXISTS subjects Array(String) DEFAULT emptyArrayString();

CREATE TABLE IF NOT EXISTS cx.erasure_subjects ON CLUSTER 'cx'
(
    request_id String,
    kind       String,
    value      String,
    added_at   DateTime DEFAULT now()
)
ENGINE = ReplicatedMergeTree('/clickhouse/tables/all/cx/erasure_subjects', '{shard}-{replica}')
ORDER BY (request_id, kind, value);

CREATE VIEW IF NOT EXISTS cx.churn_alerts_resolved ON CLUSTER 'cx' AS
SELECT
    alert_id,
    if(resolved_key = '', stitched_key, resolved_key) AS customer_key,
    stitched_key,
    level, previous_level, dissatisfied_90d, experience_keys, signals, dimensions, triggered_at,
    lifetime_value, emitted_at
FROM
(
    SELECT *, customer_key AS stitched_key FROM cx.churn_alerts FINAL
) AS stitched
GLOBAL ANY LEFT JOIN
(
    SELECT stitched_key, argMax(customer_key, version) AS resolved_key
    FROM cx.identity_overrides
    GROUP BY stitched_key
) AS overrides USING (stitched_key);

CREATE VIEW IF NOT EXISTS cx.journeys_resolved ON CLUSTER 'cx' AS
SELECT
    journey_id,
    if(resolved_key = '', stitched_key, resolved_key) AS customer_key,
    stitched_key,
    journey_type, status, started_at, ended_at, last_event_at, touchpoints, channels, dissatisfying,
    merged_into, version, updated_at
FROM
(
    SELECT *, customer_key AS stitched_key FROM cx.journeys FINAL
) AS stitched
GLOBAL ANY LEFT JOIN
(
    SELECT stitched_key, argMax(customer_key, version) AS resolved_key
    FROM cx.identity_overrides
    GROUP BY stitched_key
) AS overrides USING (stitched_key);

CREATE TABLE IF NOT EXISTS cx.touchpoints_by_customer_local ON CLUSTER 'cx'
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
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/cx/touchpoints_by_customer', '{replica}')
ORDER BY (customer_key, occurred_at, event_id)
SETTINGS index_granularity = 256;

CREATE TABLE IF NOT EXISTS cx.touchpoints_by_customer ON CLUSTER 'cx' AS cx.touchpoints_by_customer_local
ENGINE = Distributed('cx', 'cx', 'touchpoints_by_customer_local', cityHash64(event_id));

CREATE MATERIALIZED VIEW IF NOT EXISTS cx.touchpoints_by_customer_mv ON CLUSTER 'cx' TO cx.touchpoints_by_customer_local AS
SELECT customer_key, occurred_at, event_id, channel, event_type, source, signals, journey_id
FROM cx.touchpoints_local;

CREATE TABLE IF NOT EXISTS cx.signals_by_customer_local ON CLUSTER 'cx'
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
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/cx/signals_by_customer', '{replica}')
ORDER BY (customer_key, experience_key, signal, occurred_at, event_id)
SETTINGS index_granularity = 256;

CREATE TABLE IF NOT EXISTS cx.signals_by_customer ON CLUSTER 'cx' AS cx.signals_by_customer_local
ENGINE = Distributed('cx', 'cx', 'signals_by_customer_local', cityHash64(event_id));

CREATE MATERIALIZED VIEW IF NOT EXISTS cx.signals_by_customer_mv ON CLUSTER 'cx' TO cx.signals_by_customer_local AS
SELECT customer_key, experience_key, signal, occurred_at, event_id, polarity, dimension, channel
FROM cx.experience_signals_local;

CREATE TABLE IF NOT EXISTS cx.journeys_by_customer_local ON CLUSTER 'cx'
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
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/cx/journeys_by_customer', '{replica}', version)
ORDER BY (customer_key, journey_id)
SETTINGS index_granularity = 256;

CREATE TABLE IF NOT EXISTS cx.journeys_by_customer ON CLUSTER 'cx' AS cx.journeys_by_customer_local
ENGINE = Distributed('cx', 'cx', 'journeys_by_customer_local', cityHash64(journey_id));

CREATE MATERIALIZED VIEW IF NOT EXISTS cx.journeys_by_customer_mv ON CLUSTER 'cx' TO cx.journeys_by_customer_local AS
SELECT customer_key, journey_id, journey_type, status, started_at, last_event_at, touchpoints, channels,
       dissatisfying, merged_into, version
FROM cx.journeys_local;

CREATE TABLE IF NOT EXISTS cx.alerts_by_customer_local ON CLUSTER 'cx'
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
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/cx/alerts_by_customer', '{replica}')
ORDER BY (customer_key, alert_id)
SETTINGS index_granularity = 256;

CREATE TABLE IF NOT EXISTS cx.alerts_by_customer ON CLUSTER 'cx' AS cx.alerts_by_customer_local
ENGINE = Distributed('cx', 'cx', 'alerts_by_customer_local', cityHash64(alert_id));

CREATE MATERIALIZED VIEW IF NOT EXISTS cx.alerts_by_customer_mv ON CLUSTER 'cx' TO cx.alerts_by_customer_local AS
SELECT customer_key, alert_id, level, dissatisfied_90d, experience_keys, signals, dimensions, triggered_at
FROM cx.churn_alerts_local;

ALTER TABLE cx.churn_alerts_local ON CLUSTER 'cx' ADD COLUMN IF NOT EXISTS actions Array(String) DEFAULT emptyArrayString();

ALTER TABLE cx.churn_alerts ON CLUSTER 'cx' ADD COLUMN IF NOT EXISTS actions Array(String) DEFAULT emptyArrayString();

ALTER TABLE cx.churn_alerts_local ON CLUSTER 'cx' ADD COLUMN IF NOT EXISTS action_texts Array(String) DEFAULT emptyArrayString();

ALTER TABLE cx.churn_alerts ON CLUSTER 'cx' ADD COLUMN IF NOT EXISTS action_texts Array(String) DEFAULT emptyArrayString();

ALTER TABLE cx.alerts_by_customer_local ON CLUSTER 'cx' ADD COLUMN IF NOT EXISTS actions Array(String) DEFAULT emptyArrayString();

ALTER TABLE cx.alerts_by_customer ON CLUSTER 'cx' ADD COLUMN IF NOT EXISTS actions Array(String) DEFAULT emptyArrayString();

ALTER TABLE cx.alerts_by_customer_local ON CLUSTER 'cx' ADD COLUMN IF NOT EXISTS action_texts Array(String) DEFAULT emptyArrayString();

ALTER TABLE cx.alerts_by_customer ON CLUSTER 'cx' ADD COLUMN IF NOT EXISTS action_texts Array(String) DEFAULT emptyArrayString();

DROP TABLE IF EXISTS cx.alerts_by_customer_mv ON CLUSTER 'cx';

CREATE MATERIALIZED VIEW IF NOT EXISTS cx.alerts_by_customer_mv ON CLUSTER 'cx' TO cx.alerts_by_customer_local AS
SELECT customer_key, alert_id, level, dissatisfied_90d, experience_keys, signals, dimensions, triggered_at,
       actions, action_texts
FROM cx.churn_alerts_local;

DROP TABLE IF EXISTS cx.churn_alerts_resolved ON CLUSTER 'cx';

CREATE VIEW IF NOT EXISTS cx.churn_alerts_resolved ON CLUSTER 'cx' AS
SELECT
    alert_id,
    if(resolved_key = '', stitched_key, resolved_key) AS customer_key,
    stitched_key,
    level, previous_level, dissatisfied_90d, experience_keys, signals, dimensions, triggered_at,
    lifetime_value, emitted_at, actions, action_texts
FROM
(
    SELECT *, customer_key AS stitched_key FROM cx.churn_alerts FINAL
) AS stitched
GLOBAL ANY LEFT JOIN
(
    SELECT stitched_key, argMax(customer_key, version) AS resolved_key
    FROM cx.identity_overrides
    GROUP BY stitched_key
) AS overrides USING (stitched_key);

CREATE TABLE IF NOT EXISTS cx.alert_outcomes_local ON CLUSTER 'cx'
(
    alert_id     String,
    customer_key String,
    triggered_at DateTime,
    outcome      Enum8('pending' = 0, 'recovered' = 1, 'relapsed' = 2, 'lost' = 3),
    decided      UInt8,
    outcome_at   Nullable(DateTime),
    version      UInt64,
    updated_at   DateTime
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/cx/alert_outcomes', '{replica}', version)
ORDER BY alert_id;

CREATE TABLE IF NOT EXISTS cx.alert_outcomes ON CLUSTER 'cx' AS cx.alert_outcomes_local
ENGINE = Distributed('cx', 'cx', 'alert_outcomes_local', cityHash64(alert_id));
