-- One row per volume per reconciliation: usage is measured at last_reconciled_at, so a value
-- seen again in later snapshots with the same reconciliation time is one observation, not two.
-- grain: (source, volume_id, reconciled_at)
-- depends on: volume_snapshots, volume_observations_before (source: what an incremental build
--   keeps of the reconciliations it rebuilds, their snapshots before $since; empty in a full
--   build)
-- parameters: $since (first day built; a full build binds the epoch)
-- incremental: first_seen_at (an incremental build replaces the rows from $since on)
-- incremental also replaces: volume_observations_before (the earlier reconciliations seen
--   again on or after $since, rebuilt whole from their earlier part)
-- A reconciliation can span days (a volume reconciled rarely, or stalled), so its rows from
-- $since on are merged with what came before: the first sighting, and the usage measured at
-- it, stay those of the earlier part; the counts add up.
-- columns:
--   source: the fleet
--   volume_id: the volume, unique within its source
--   reconciled_at: the reconciliation instant at which usage was measured
--   used_bytes: bytes used, measured at reconciled_at
--   inode_count: inodes used, measured at reconciled_at
--   first_seen_at: the first snapshot that showed this reconciliation
--   snapshot_count: how many snapshots repeated it
--   last_seen_at: the last snapshot that showed this reconciliation
with

snapshots as (
    select * from volume_snapshots
    where last_reconciled_at is not null
        and snapshot_at >= $since
),

recent as (
    select
        source,
        volume_id,
        last_reconciled_at as reconciled_at,
        arg_min(used_bytes, snapshot_at) as used_bytes,
        arg_min(inode_count, snapshot_at) as inode_count,
        min(snapshot_at) as first_seen_at,
        count(*) as snapshot_count,
        max(snapshot_at) as last_seen_at
    from snapshots
    group by source, volume_id, last_reconciled_at
),

final as (
    select
        coalesce(earlier.source, recent.source) as source,
        coalesce(earlier.volume_id, recent.volume_id) as volume_id,
        coalesce(earlier.reconciled_at, recent.reconciled_at) as reconciled_at,
        case when earlier.volume_id is null then recent.used_bytes else earlier.used_bytes end
            as used_bytes,
        case when earlier.volume_id is null then recent.inode_count else earlier.inode_count end
            as inode_count,
        coalesce(earlier.first_seen_at, recent.first_seen_at) as first_seen_at,
        coalesce(earlier.snapshot_count, 0) + coalesce(recent.snapshot_count, 0)
            as snapshot_count,
        -- an earlier part seen again from $since on was last seen then
        coalesce(recent.last_seen_at, earlier.last_seen_at) as last_seen_at
    from volume_observations_before as earlier
    full outer join recent
        on earlier.source = recent.source
        and earlier.volume_id = recent.volume_id
        and earlier.reconciled_at = recent.reconciled_at
    where coalesce(earlier.snapshot_count, 0) + coalesce(recent.snapshot_count, 0) > 0
)

select * from final
