-- The calls explorer filters and sorts by columns the sort key (project, model, timestamp, event_id) does
-- not order. Skip indexes, one summary per granule (8,192 calls), let a read pass over granules that
-- cannot match: minmax of latency and cost (a range filter skips granules wholly outside it; slowest /
-- costliest first skips granules whose largest value is below the page's current last one), and the set
-- of status and error_type values (failures come in bursts: a listing of errors skips granules without
-- one; a granule with more than 64 error types keeps no set and is always read). Each costs the insert
-- one pass over a small column.
ALTER TABLE {db}.inferences ADD INDEX IF NOT EXISTS idx_latency latency_ms TYPE minmax GRANULARITY 1;
ALTER TABLE {db}.inferences ADD INDEX IF NOT EXISTS idx_cost cost_usd TYPE minmax GRANULARITY 1;
ALTER TABLE {db}.inferences ADD INDEX IF NOT EXISTS idx_status status TYPE set(16) GRANULARITY 1;
ALTER TABLE {db}.inferences ADD INDEX IF NOT EXISTS idx_error_type error_type TYPE set(64) GRANULARITY 1;
-- builds them for rows written before this migration (background mutations; until they finish, a part
-- without an index is read as before)
ALTER TABLE {db}.inferences MATERIALIZE INDEX idx_latency;
ALTER TABLE {db}.inferences MATERIALIZE INDEX idx_cost;
ALTER TABLE {db}.inferences MATERIALIZE INDEX idx_status;
ALTER TABLE {db}.inferences MATERIALIZE INDEX idx_error_type
