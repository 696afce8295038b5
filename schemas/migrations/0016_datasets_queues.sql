-- Datasets: named, versioned, immutable snapshots of feedback joined to its calls.
-- A version is committed by its row in `datasets` (one writer per version: a claim); its rows are
-- copied once into `dataset_rows` under a fresh build id before that, so a build a crash left half made
-- is never named by any version and a retry makes a new build. A server DSN works the same (no files).
CREATE TABLE IF NOT EXISTS {db}.datasets
(
    project        LowCardinality(String),
    name           String,
    version        UInt32,
    build_id       String,
    format         LowCardinality(String),
    row_count      UInt64,
    byte_count     UInt64,
    sha256         String,
    query          String,
    request_id     String,
    created_by     String,
    created_at     DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(created_at)
ORDER BY (project, name, version);

CREATE TABLE IF NOT EXISTS {db}.dataset_rows
(
    project        LowCardinality(String),
    build_id       String,
    timestamp      DateTime64(3, 'UTC'),
    feedback_id    String,
    inference_id   String,
    kind           LowCardinality(String),
    value          Nullable(Float64),
    label          String,
    name           LowCardinality(String),
    text           String CODEC(ZSTD(3)),
    source         LowCardinality(String),
    user_id        String,
    model          LowCardinality(String),
    model_version  LowCardinality(String),
    prompt         String CODEC(ZSTD(3)),
    response       String CODEC(ZSTD(3)),
    tags           Map(String, String)
)
ENGINE = MergeTree
ORDER BY (project, build_id, timestamp, feedback_id);

-- Review queues: the queue (its rules and form as JSON), the calls in it, and every review. Who holds
-- an item is a claim (kind 'hold', key '<queue>/<call>#<generation>'): one reviewer wins it.
CREATE TABLE IF NOT EXISTS {db}.review_queues
(
    project        LowCardinality(String),
    queue_id       String,
    body           String,
    deleted        UInt8,
    updated_at     DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(updated_at)
ORDER BY (project, queue_id);

CREATE TABLE IF NOT EXISTS {db}.queue_items
(
    project        LowCardinality(String),
    queue_id       String,
    inference_id   String,
    added_by       String,
    added_at       DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(added_at)
ORDER BY (project, queue_id, inference_id);

CREATE TABLE IF NOT EXISTS {db}.queue_reviews
(
    project        LowCardinality(String),
    queue_id       String,
    inference_id   String,
    reviewer       String,
    skipped        UInt8,
    undone         UInt8,
    scores         String,
    feedback_ids   Array(String),
    reviewed_at    DateTime64(3, 'UTC'),
    version        UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY (project, queue_id, inference_id, reviewer)
