-- Raw events. ReplacingMergeTree on the event id: a redelivered event collapses into one row
-- (reads that must be exact use FINAL). Same event => same timestamp => same partition.
CREATE TABLE IF NOT EXISTS {db}.inferences
(
    project        LowCardinality(String),
    event_id       String,
    model          LowCardinality(String),
    model_version  LowCardinality(String),
    provider       LowCardinality(String),
    timestamp      DateTime64(3, 'UTC'),
    latency_ms     Nullable(Float64),
    status         LowCardinality(String),
    error_type     String,
    input_tokens   Nullable(UInt32),
    output_tokens  Nullable(UInt32),
    cached_tokens  Nullable(UInt32),
    cost_usd       Nullable(Float64),
    prompt         String CODEC(ZSTD(3)),
    response       String CODEC(ZSTD(3)),
    features       String CODEC(ZSTD(3)),
    prediction     String,
    probabilities  String,
    embedding      Array(Float32),
    tags           Map(LowCardinality(String), String),
    ingested_at    DateTime64(3, 'UTC') DEFAULT now64(3),
    INDEX idx_ts timestamp TYPE minmax GRANULARITY 1,
    INDEX idx_model model TYPE set(256) GRANULARITY 4
)
ENGINE = ReplacingMergeTree(ingested_at)
PARTITION BY toYYYYMM(timestamp)
ORDER BY (project, event_id);

CREATE TABLE IF NOT EXISTS {db}.feedback
(
    project        LowCardinality(String),
    feedback_id    String,
    inference_id   String,
    timestamp      DateTime64(3, 'UTC'),
    kind           LowCardinality(String),
    value          Nullable(Float64),
    label          String,
    name           LowCardinality(String),
    text           String CODEC(ZSTD(3)),
    source         LowCardinality(String),
    user_id        String,
    ingested_at    DateTime64(3, 'UTC') DEFAULT now64(3),
    INDEX idx_ts timestamp TYPE minmax GRANULARITY 1,
    INDEX idx_inference inference_id TYPE bloom_filter(0.01) GRANULARITY 1
)
ENGINE = ReplacingMergeTree(ingested_at)
PARTITION BY toYYYYMM(timestamp)
ORDER BY (project, feedback_id);

CREATE TABLE IF NOT EXISTS {db}.dead_letters
(
    id             UUID DEFAULT generateUUIDv4(),
    received_at    DateTime64(3, 'UTC') DEFAULT now64(3),
    source         LowCardinality(String),
    project        LowCardinality(String),
    error          String,
    payload        String CODEC(ZSTD(3))
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(received_at)
ORDER BY (received_at, id);

CREATE TABLE IF NOT EXISTS {db}.api_keys
(
    key_id         String,
    project        LowCardinality(String),
    name           String,
    key_hash       String,
    created_at     DateTime64(3, 'UTC'),
    revoked        UInt8,
    updated_at     DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(updated_at)
ORDER BY key_id;
