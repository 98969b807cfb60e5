-- When forecasts of time to full came true (forecast_backtest, forecast_calibration): per
-- resource, the first snapshot of each UTC day at which a volume's usage had reached the quota
-- then in force. The first fill at or after a 00:00 origin is the first of the earliest such
-- day, so this is all an as-of join from an origin needs, and it grows with the days a volume
-- spent full, not with its snapshots.
-- grain: (source, volume_id, resource, snapshot_at); one row per UTC day of snapshot_at
-- depends on: volume_snapshots
-- parameters: $since (first day built; a full build binds the epoch)
-- incremental: snapshot_at (an incremental build replaces the rows from $since on)
-- columns:
--   source: the fleet
--   volume_id: the volume, unique within its source
--   resource: `bytes` (used_bytes against max_size_bytes) or `inodes` (inode_count against
--     max_file_count)
--   snapshot_at: the day's first snapshot at which usage was at or over the quota
with

snapshots as (
    select * from volume_snapshots
    where snapshot_at >= $since
),

fills as (
    select source, volume_id, 'bytes' as resource, snapshot_at
    from snapshots
    where used_bytes >= max_size_bytes
    union all
    select source, volume_id, 'inodes', snapshot_at
    from snapshots
    where inode_count >= max_file_count
),

final as (
    select source, volume_id, resource, min(snapshot_at) as snapshot_at
    from fills
    group by source, volume_id, resource, cast(snapshot_at as date)
)

select * from final
