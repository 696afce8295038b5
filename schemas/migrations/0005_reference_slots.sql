-- Two slots per model in references: explicit = 1 (an uploaded dataset or a pinned range) and explicit = 0
-- (the default, the model's first window). Readers take the explicit slot when there is one, so a default
-- written late (a worker with a stale cache, another process) can never shadow an upload: it only
-- replaces the default slot. Within a slot the newest created_at still wins.
ALTER TABLE {db}.references ADD COLUMN IF NOT EXISTS explicit UInt8, MODIFY ORDER BY (project, model, explicit);
-- references set before this migration: copy the explicit ones into their slot (same created_at, so a
-- second run collapses into the same row)
INSERT INTO {db}.references (project, model, kind, range_start, range_end, rows, profile, created_at, explicit)
SELECT project, model, kind, range_start, range_end, rows, profile, created_at, 1
FROM {db}.references FINAL WHERE kind != 'first_window'
