-- Rule-based review queues keep filling as events arrive: a periodic pass looks only at what arrived
-- (calls, and feedback naming a call) after the queue's watermark, a position (arrival time, call id)
-- in that arrival order. A pass stores the position it reached; the newest position stands (a row per
-- pass until merges keep the greatest). Written only by the winner of the pass's claim.
CREATE TABLE IF NOT EXISTS {db}.queue_watermarks
(
    project        LowCardinality(String),
    queue_id       String,
    arrived_at     DateTime64(3, 'UTC'),
    inference_id   String,
    updated_at     DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(arrived_at)
ORDER BY (project, queue_id);

-- Arrival order: one minmax summary of ingested_at per granule lets a pass skip what arrived before
-- the watermark (rows are written in arrival order, so granules hardly overlap).
ALTER TABLE {db}.inferences ADD INDEX IF NOT EXISTS idx_ingested ingested_at TYPE minmax GRANULARITY 1;
ALTER TABLE {db}.feedback ADD INDEX IF NOT EXISTS idx_ingested ingested_at TYPE minmax GRANULARITY 1;
ALTER TABLE {db}.inferences MATERIALIZE INDEX idx_ingested;
ALTER TABLE {db}.feedback MATERIALIZE INDEX idx_ingested
