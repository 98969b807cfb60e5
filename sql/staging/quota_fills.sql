-- The snapshots at which a volume's usage had reached the quota then in force, per resource:
-- when forecasts of time to full came true (forecast_backtest, forecast_calibration).
-- grain: (source, volume_id, resource, snapshot_at)
-- depends on: volume_snapshots
-- parameters: $since (first day built; a full build binds the epoch)
-- incremental: snapshot_at (an incremental build replaces the rows from $since on)
-- columns:
--   source: the fleet
--   volume_id: the volume, unique within its source
--   resource: `bytes` (used_bytes against max_size_bytes) or `inodes` (inode_count against
--     max_file_count)
--   snapshot_at: a snapshot at which usage was at or over the quota
with

snapshots as (
    select * from volume_snapshots
    where snapshot_at >= $since
),

final as (
    select source, volume_id, 'bytes' as resource, snapshot_at
    from snapshots
    where used_bytes >= max_size_bytes
    union all
    select source, volume_id, 'inodes', snapshot_at
    from snapshots
    where inode_count >= max_file_count
)

select * from final
