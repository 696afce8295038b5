-- Claims: which process owns a piece of work that several processes (API replicas, Kafka workers) may
-- reach at once: announcing the alert of a (monitor, model, window), a retraining request, one
-- delivery of an event to one channel. A claim is an INSERT carrying insert_deduplication_token =
-- (project, kind, key): ClickHouse checks and records the token under the table's parts lock, so of
-- racing inserts exactly one row is stored and every claimant reads back the same owner. Nothing here
-- is read-then-write. On a replicated cluster the same token deduplicates through Keeper
-- (replicated_deduplication_window); the setting below is the single-server equivalent.
CREATE TABLE IF NOT EXISTS {db}.claims
(
    project        LowCardinality(String),
    kind           LowCardinality(String),
    claim_key      String,
    owner          String,
    claimed_at     DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = MergeTree
ORDER BY (project, kind, claim_key)
TTL toDateTime(claimed_at) + INTERVAL 90 DAY
SETTINGS non_replicated_deduplication_window = 100000;
