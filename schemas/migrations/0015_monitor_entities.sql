-- Monitors beyond one window of one model: the tag values (entities) a group_by alert names, and a
-- small hourly activity aggregate per model — events and the newest event time — that no-data
-- monitors read on every sweep instead of the raw table (a few rows per model and hour). Filled by a
-- materialized view on every insert into inferences; the existing events are counted once here.
-- Counts are of inserted rows: an event re-sent before the raw table merged it counts twice (the
-- usual-rate baseline tolerates that; the newest event time is exact).
ALTER TABLE {db}.alerts ADD COLUMN IF NOT EXISTS entities Array(String) DEFAULT [];

CREATE TABLE IF NOT EXISTS {db}.model_activity
(
    project        LowCardinality(String),
    model          LowCardinality(String),
    hour           DateTime('UTC'),
    events         SimpleAggregateFunction(sum, UInt64),
    last_at        SimpleAggregateFunction(max, DateTime64(3, 'UTC'))
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(hour)
ORDER BY (project, model, hour)
TTL hour + INTERVAL 35 DAY;

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.model_activity_mv TO {db}.model_activity AS
SELECT project, model, toStartOfHour(timestamp) AS hour, toUInt64(count()) AS events, max(timestamp) AS last_at
FROM {db}.inferences
GROUP BY project, model, hour;

INSERT INTO {db}.model_activity
SELECT project, model, toStartOfHour(timestamp) AS hour, toUInt64(count()) AS events, max(timestamp) AS last_at
FROM {db}.inferences
GROUP BY project, model, hour
