-- The calls listing filters calls by their feedback (has_feedback, feedback_kind), looking up the
-- feedback of a page's candidate calls by inference id. The table is sorted by (project, feedback_id), so
-- the feedback of recent calls is spread over all its granules and the bloom filter on inference_id skips
-- little. A small projection sorted by inference id reads only the ranges of those ids.
ALTER TABLE {db}.feedback ADD PROJECTION IF NOT EXISTS by_inference (SELECT project, inference_id, kind ORDER BY project, inference_id);
-- builds the projection for rows written before this migration (a background mutation)
ALTER TABLE {db}.feedback MATERIALIZE PROJECTION by_inference
