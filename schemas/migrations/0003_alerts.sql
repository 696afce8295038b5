-- Monitors, the alerts they fire, every delivery attempt, retraining requests, and the per-window
-- verdicts that count consecutive breaches. Each table has one kind of writer, so no write can undo
-- another: the alert row is written once by the monitor engine, acknowledgements by the API, delivery
-- attempts by the dispatcher; an alert's status and delivery summary are read by joining them.

-- Versioned monitor rows: every change (and a deletion) is a new row; the highest version wins.
CREATE TABLE IF NOT EXISTS {db}.monitors
(
    project        LowCardinality(String),
    monitor_id     String,
    body           String CODEC(ZSTD(3)),
    deleted        UInt8,
    version        UInt64,
    updated_at     DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(version)
ORDER BY (project, monitor_id);

-- One row per fired alert (the outbox). dedup_key = monitor:model:window_start, so a window that is
-- evaluated again never fires twice. channels = how many channels the monitor had when it fired: a
-- delivery is complete when each of them has a final attempt in alert_deliveries.
CREATE TABLE IF NOT EXISTS {db}.alerts
(
    project        LowCardinality(String),
    alert_id       String,
    monitor_id     String,
    monitor_name   String,
    model          LowCardinality(String),
    model_version  LowCardinality(String),
    kind           LowCardinality(String),
    severity       LowCardinality(String),
    window_start   DateTime64(3, 'UTC'),
    window_end     DateTime64(3, 'UTC'),
    metric         LowCardinality(String),
    dimension      String,
    value          Float64,
    threshold      Float64,
    condition      String,
    p_value        Nullable(Float64),
    details        String CODEC(ZSTD(3)),
    report_url     String,
    fired_at       DateTime64(3, 'UTC'),
    dedup_key      String,
    channels       UInt16,
    INDEX idx_dedup dedup_key TYPE bloom_filter(0.01) GRANULARITY 1
)
ENGINE = ReplacingMergeTree(fired_at)
PARTITION BY toYYYYMM(fired_at)
ORDER BY (project, alert_id);

-- Acknowledgements (status 'acked' = a row here).
CREATE TABLE IF NOT EXISTS {db}.alert_acks
(
    project        LowCardinality(String),
    alert_id       String,
    acked_at       DateTime64(3, 'UTC'),
    acked_by       String,
    note           String
)
ENGINE = ReplacingMergeTree(acked_at)
ORDER BY (project, alert_id);

-- Every delivery attempt of an alert or a retraining request (target_type), secret-free URL.
CREATE TABLE IF NOT EXISTS {db}.alert_deliveries
(
    project        LowCardinality(String),
    target_id      String,
    target_type    LowCardinality(String),
    monitor_id     String,
    channel_index  UInt16,
    channel        LowCardinality(String),
    url            String,
    attempt        UInt16,
    status_code    Nullable(UInt16),
    error          String,
    latency_ms     Float64,
    succeeded      UInt8,
    final          UInt8,
    at             DateTime64(3, 'UTC')
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(at)
ORDER BY (project, target_id, at);

CREATE TABLE IF NOT EXISTS {db}.retrain_requests
(
    project        LowCardinality(String),
    request_id     String,
    monitor_id     String,
    model          LowCardinality(String),
    model_version  LowCardinality(String),
    reason         Array(String),
    window_start   DateTime64(3, 'UTC'),
    window_end     DateTime64(3, 'UTC'),
    evidence       String CODEC(ZSTD(3)),
    dataset        String,
    created_at     DateTime64(3, 'UTC'),
    channels       UInt16
)
ENGINE = ReplacingMergeTree(created_at)
ORDER BY (project, request_id);

-- One verdict per (monitor, model, window) for monitors with retrain_after: the consecutive-breach
-- count survives restarts and any worker can continue it. Re-evaluating a window replaces its row.
-- retrain_id marks the window whose streak fired a retraining request (the streak is spent there).
CREATE TABLE IF NOT EXISTS {db}.monitor_evaluations
(
    project        LowCardinality(String),
    monitor_id     String,
    model          LowCardinality(String),
    window_start   DateTime64(3, 'UTC'),
    window_end     DateTime64(3, 'UTC'),
    breached       UInt8,
    value          Float64,
    alert_id       String,
    retrain_id     String,
    version        UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY (project, monitor_id, model, window_start);
