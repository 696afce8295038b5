-- Each project's redaction policy (schemas.privacy.RedactionPolicy as JSON); a project without a row
-- follows the server's default (LOOPWATCH_REDACTION_MODE). The newest row per project wins; a deleted
-- policy is a row with deleted = 1 (streams/storage/redaction_policies.py).
CREATE TABLE IF NOT EXISTS {db}.redaction_policies
(
    project     LowCardinality(String),
    policy      String,
    deleted     UInt8 DEFAULT 0,
    updated_at  DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(updated_at)
ORDER BY project;

-- A key's scope: ingest, read, admin, or '' (a key made without one: full project access).
ALTER TABLE {db}.api_keys ADD COLUMN IF NOT EXISTS scope LowCardinality(String) DEFAULT '';
