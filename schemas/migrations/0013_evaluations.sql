-- Online evaluators (schemas.evaluators.Evaluator as JSON), versioned like monitors: every change
-- writes a new row, reads take the newest (FINAL); a deleted evaluator is a row with deleted = 1.
CREATE TABLE IF NOT EXISTS {db}.evaluators
(
    project        LowCardinality(String),
    evaluator_id   String,
    body           String CODEC(ZSTD(3)),
    deleted        UInt8,
    version        UInt64,
    updated_at     DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(version)
ORDER BY (project, evaluator_id);

-- The durable queue of sampled calls and their outcome, one row per (evaluator, event) after FINAL:
-- status pending (sampled, not yet evaluated), done (its score is a feedback row), error (the judge or
-- check failed for good: no score is made up) or skipped (the call did not match on a closer look).
-- Judge usage (tokens, cost, latency) is kept here, apart from the application's own cost.
CREATE TABLE IF NOT EXISTS {db}.evaluations
(
    project        LowCardinality(String),
    evaluator_id   String,
    event_id       String,
    status         LowCardinality(String),
    enqueued_at    DateTime64(3, 'UTC'),
    backfill_id    String DEFAULT '',
    attempts       UInt16 DEFAULT 0,
    score          Nullable(Float64),
    label          String DEFAULT '',
    explanation    String DEFAULT '' CODEC(ZSTD(3)),
    judge_model    LowCardinality(String) DEFAULT '',
    input_tokens   UInt32 DEFAULT 0,
    output_tokens  UInt32 DEFAULT 0,
    cost_usd       Float64 DEFAULT 0,
    latency_ms     Float64 DEFAULT 0,
    error          String DEFAULT '',
    version        UInt64,
    updated_at     DateTime64(3, 'UTC') DEFAULT now64(3),
    INDEX idx_status status TYPE set(8) GRANULARITY 1
)
ENGINE = ReplacingMergeTree(version)
ORDER BY (project, evaluator_id, event_id);
