-- Contract 3: the core tables of database {db}. Portable DDL: ClickHouse 18.16 and current.
-- All times UTC. Reads that must be exact use FINAL.

CREATE DATABASE IF NOT EXISTS {db};

CREATE TABLE IF NOT EXISTS {db}.touchpoints
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
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(occurred_at)
ORDER BY (channel, occurred_at, event_id);

CREATE TABLE IF NOT EXISTS {db}.experience_signals
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
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(occurred_at)
ORDER BY (signal, occurred_at, event_id);

CREATE TABLE IF NOT EXISTS {db}.customer_experience
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
ENGINE = ReplacingMergeTree(version)
ORDER BY customer_key;

CREATE TABLE IF NOT EXISTS {db}.churn_alerts
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
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(triggered_at)
ORDER BY alert_id;

-- No partitioning: started_at moves when an earlier touchpoint arrives late, and a journey
-- must stay in one part to be replaced.
CREATE TABLE IF NOT EXISTS {db}.journeys
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
ENGINE = ReplacingMergeTree(version)
ORDER BY journey_id;

CREATE TABLE IF NOT EXISTS {db}.identity_links
(
    identifier      String,
    identifier_type String,
    customer_key    String,
    previous_key    String,
    linked_at       DateTime,
    event_id        String,
    version         UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY identifier;

-- Only the stitched keys that moved after their touchpoints were stored (PostHog's
-- person_distinct_id_overrides idea): small, so touchpoints_resolved joins it cheaply.
CREATE TABLE IF NOT EXISTS {db}.identity_overrides
(
    stitched_key String,
    customer_key String,
    merged_at    DateTime,
    version      UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY stitched_key;

CREATE TABLE IF NOT EXISTS {db}.identity_conflicts
(
    identifier   String,
    existing_key String,
    claimed_key  String,
    reason       String,
    event_id     String,
    occurred_at  DateTime,
    detected_at  DateTime
)
ENGINE = ReplacingMergeTree
ORDER BY (identifier, claimed_key, event_id);

CREATE TABLE IF NOT EXISTS {db}.dead_letters
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
ENGINE = MergeTree
PARTITION BY toYYYYMM(received_at)
ORDER BY (topic, partition, offset, idx);
