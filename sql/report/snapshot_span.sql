-- The recorded history: first and latest snapshot, how many, and the latest build's as_of (the
-- latest snapshot even when every snapshot so far listed no volume).
-- grain: one row
-- depends on: volume_snapshots, build._build_info (the build's own record)
-- parameters: none
select
    (select min(snapshot_at) from volume_snapshots) as first_snapshot,
    (select max(snapshot_at) from volume_snapshots) as latest_snapshot,
    (select count(distinct snapshot_at) from volume_snapshots) as snapshots,
    (select max(as_of) from build._build_info) as built_as_of
