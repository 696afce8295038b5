-- Each project's retention per kind of data (schemas.privacy.RetentionPolicy as JSON), enforced by the
-- retention sweeper (streams/privacy/retention.py) under the global TTLs. The newest row per project
-- wins; a deleted policy is a row with deleted = 1 (streams/storage/retention_policies.py).
CREATE TABLE IF NOT EXISTS {db}.retention_policies
(
    project     LowCardinality(String),
    policy      String,
    deleted     UInt8 DEFAULT 0,
    updated_at  DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(updated_at)
ORDER BY project;
