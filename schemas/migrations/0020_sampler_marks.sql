-- Online evaluations sample stored calls behind a durable mark (streams/storage/sampler_marks.py): a
-- sampler reads the rows ingested since its mark, queues those its evaluators take, then moves the mark.
-- Ingest never waits for the evaluations queue. ReplacingMergeTree(mark): the furthest mark wins.
-- The minmax indexes on ingested_at let a sampler read only the granules written since (new parts).
CREATE TABLE IF NOT EXISTS {db}.sampler_marks
(
    source      LowCardinality(String),
    mark        DateTime64(3, 'UTC'),
    updated_at  DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(mark)
ORDER BY source;
ALTER TABLE {db}.inferences ADD INDEX IF NOT EXISTS idx_ingested_at ingested_at TYPE minmax GRANULARITY 1;
ALTER TABLE {db}.feedback ADD INDEX IF NOT EXISTS idx_ingested_at ingested_at TYPE minmax GRANULARITY 1
