-- Prompts and responses that arrived as OTLP log events (content captured "via events"), keyed by the
-- inference (trace id + span id) they belong to. The span's ingest fills its event from here when the
-- log came first; a log that comes after its span rewrites the stored event (streams/otlp/texts.py).
-- Re-sent logs replace their row; rows are kept a week, long past any exporter's retry.
CREATE TABLE IF NOT EXISTS {db}.otlp_texts
(
    project       LowCardinality(String),
    inference_id  String,
    prompt        Nullable(String) CODEC(ZSTD(3)),
    response      Nullable(String) CODEC(ZSTD(3)),
    ingested_at   DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(ingested_at)
ORDER BY (project, inference_id)
TTL toDateTime(ingested_at) + INTERVAL 7 DAY
