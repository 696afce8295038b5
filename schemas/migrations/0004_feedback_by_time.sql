-- Feedback listings are newest first (GET /v1/feedback, exports), but the table is sorted by
-- (project, feedback_id) so that re-sent feedback collapses. A projection keeps a second copy sorted by
-- time, so a page reads the newest granules in order instead of every row of the project.
-- ReplacingMergeTree needs to be told what merges do to projections: rebuild them from the merged rows.
ALTER TABLE {db}.feedback MODIFY SETTING deduplicate_merge_projection_mode = 'rebuild';
ALTER TABLE {db}.feedback ADD PROJECTION IF NOT EXISTS by_time (SELECT * ORDER BY project, timestamp, feedback_id);
-- builds the projection for rows written before this migration (a background mutation)
ALTER TABLE {db}.feedback MATERIALIZE PROJECTION by_time
