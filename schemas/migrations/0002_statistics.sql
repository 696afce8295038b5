-- Every computed statistic is a row here; the API, reports and monitors read them, never recompute.
-- Recomputing a window (late feedback, a second worker after a rebalance) writes the same key again and
-- the newest computed_at wins.
CREATE TABLE IF NOT EXISTS {db}.window_stats
(
    project        LowCardinality(String),
    model          LowCardinality(String),
    model_version  LowCardinality(String),
    window_start   DateTime64(3, 'UTC'),
    window_end     DateTime64(3, 'UTC'),
    family         LowCardinality(String),
    metric         LowCardinality(String),
    dimension      String,
    value          Float64,
    p_value        Nullable(Float64),
    threshold      Nullable(Float64),
    flagged        UInt8,
    sample_size    UInt64,
    details        String,
    computed_at    DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(computed_at)
PARTITION BY toYYYYMM(window_start)
ORDER BY (project, model, family, window_start, metric, dimension, model_version);

CREATE TABLE IF NOT EXISTS {db}.references
(
    project        LowCardinality(String),
    model          LowCardinality(String),
    kind           LowCardinality(String),
    range_start    Nullable(DateTime64(3, 'UTC')),
    range_end      Nullable(DateTime64(3, 'UTC')),
    rows           UInt64,
    profile        String CODEC(ZSTD(3)),
    created_at     DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(created_at)
ORDER BY (project, model);
