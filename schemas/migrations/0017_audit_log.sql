-- Who did what, when: key create/revoke/rotate, monitor create/update/delete, redaction policy changes,
-- erasures and bulk exports of raw text (streams/storage/audit.py). Append-only; never erased (an
-- erasure's subject is recorded as a hash, not the user id).
CREATE TABLE IF NOT EXISTS {db}.audit_log
(
    id       UUID DEFAULT generateUUIDv4(),
    at       DateTime64(3, 'UTC') DEFAULT now64(3),
    project  LowCardinality(String),
    actor    String,
    action   LowCardinality(String),
    target   String,
    details  String
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(at)
ORDER BY (project, at, id);
