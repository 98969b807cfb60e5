-- Row counts the demo's summary quotes: snapshot rows and quota changes recorded.
-- grain: one row
-- depends on: volume_snapshots, quota_events
-- parameters: none
select
    (select count(*) from volume_snapshots) as snapshot_rows,
    (select count(*) from quota_events) as quota_events
