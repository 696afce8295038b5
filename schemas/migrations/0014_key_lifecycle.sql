-- Key lifecycle: an expiry (NULL: never), the key a rotation replaced, and when each key was last used.
ALTER TABLE {db}.api_keys ADD COLUMN IF NOT EXISTS expires_at Nullable(DateTime64(3, 'UTC'));
ALTER TABLE {db}.api_keys ADD COLUMN IF NOT EXISTS rotated_from String DEFAULT '';

-- Last use of each key, written at most once a minute per key by each process (streams/keys.py): a
-- row per write, the newest per key wins. Kept apart from api_keys so a use never rewrites a key's row
-- (a revocation racing it could be undone).
CREATE TABLE IF NOT EXISTS {db}.api_key_usage
(
    key_id   String,
    used_at  DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(used_at)
ORDER BY key_id;
