-- Raw inferences sorted the way the window statistics read them: (project, model, timestamp). Sorted by
-- (project, event_id), a window read (one model, one time range) scanned the project's whole table, so a
-- window cost more the more was stored. Now a window reads its own granules.
-- ReplacingMergeTree collapses rows with equal sort keys: a re-sent event (same id, model and timestamp —
-- Kafka redeliveries, SDK retries and resends of events with their timestamp set) is still one row.
-- Lookups by id (feedback joins, GET /v1/inferences/{id}) use a bloom filter on event_id.
--
-- The table is rebuilt and swapped atomically. Re-runnable at any point: a leftover copy is dropped
-- first (after a crash between the swap and the drop, that is the old table, no longer needed).
DROP TABLE IF EXISTS {db}.inferences_by_window;
CREATE TABLE {db}.inferences_by_window
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
    INDEX idx_event_id event_id TYPE bloom_filter(0.001) GRANULARITY 1,
    INDEX idx_ts timestamp TYPE minmax GRANULARITY 1
)
ENGINE = ReplacingMergeTree(ingested_at)
PARTITION BY toYYYYMM(timestamp)
ORDER BY (project, model, timestamp, event_id);
INSERT INTO {db}.inferences_by_window SELECT * FROM {db}.inferences;
EXCHANGE TABLES {db}.inferences AND {db}.inferences_by_window;
DROP TABLE {db}.inferences_by_window
