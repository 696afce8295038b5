-- Alerts that people can open and that end: dashboard and API links and the breach in words on
-- each alert (report_url keeps the API statistics link, named stats_api_url in the payload), the
-- snooze an alert fired under (stored, not delivered), alert resolutions and monitor snoozes.
ALTER TABLE {db}.alerts ADD COLUMN IF NOT EXISTS summary String DEFAULT '';
ALTER TABLE {db}.alerts ADD COLUMN IF NOT EXISTS alert_url String DEFAULT '';
ALTER TABLE {db}.alerts ADD COLUMN IF NOT EXISTS window_url String DEFAULT '';
ALTER TABLE {db}.alerts ADD COLUMN IF NOT EXISTS api_url String DEFAULT '';
ALTER TABLE {db}.alerts ADD COLUMN IF NOT EXISTS snoozed_until Nullable(DateTime64(3, 'UTC'));

-- One row per resolved alert (the same row from every process that resolves it: the id is derived
-- from the alert); channels = how many channels are owed the resolved message.
CREATE TABLE IF NOT EXISTS {db}.alert_resolutions
(
    project              LowCardinality(String),
    alert_id             String,
    resolution_id        String,
    monitor_id           String,
    model                LowCardinality(String),
    calm_since           DateTime64(3, 'UTC'),
    calm_windows         UInt16,
    resolved_window_end  DateTime64(3, 'UTC'),
    body                 String CODEC(ZSTD(3)),
    resolved_at          DateTime64(3, 'UTC'),
    channels             UInt16
)
ENGINE = ReplacingMergeTree(resolved_at)
ORDER BY (project, alert_id);

-- Snoozes: a monitor (model '*') or one model of it is not delivered until `until`. The newest row
-- of a (project, monitor, model) stands; unsnoozing writes `until` = now.
CREATE TABLE IF NOT EXISTS {db}.monitor_snoozes
(
    project        LowCardinality(String),
    monitor_id     String,
    model          String,
    until          DateTime64(3, 'UTC'),
    snoozed_by     String,
    note           String,
    version        UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY (project, monitor_id, model);
