-- One row per volume ever seen: its latest state, when it was first and last seen, whether it
-- is in its source's latest snapshot (is_active) and, if not, the first snapshot of its source
-- it was missing from (deleted_at).
-- grain: (source, volume_id)
-- depends on: volume_daily, volume_snapshots
-- parameters: none
-- Sightings are counted from volume_daily (a row per volume-day instead of per snapshot), so
-- the cost follows the number of volumes and days; volume_snapshots is read for the latest rows
-- and the snapshot instants only.
-- columns: those of volume_snapshots (the latest state seen), and:
--   first_seen: the first snapshot_at the volume appeared in
--   last_seen: the last snapshot_at the volume appeared in
--   snapshot_count: snapshots the volume appeared in
--   is_active: present in its source's latest snapshot
--   deleted_at: the first snapshot of its source it was missing from; null while active
with

days as (
    select * from volume_daily
),

seen as (
    select
        source,
        volume_id,
        min(first_snapshot_at) as first_seen,
        max(last_snapshot_at) as last_seen,
        cast(sum(snapshot_count) as bigint) as snapshot_count
    from days
    group by source, volume_id
),

snapshot_instants as (
    select distinct source, snapshot_at from volume_snapshots
    where snapshot_at > (select min(last_seen) from seen)
),

latest_state as (
    select volume_snapshots.*
    from volume_snapshots
    inner join seen
        on volume_snapshots.source = seen.source
        and volume_snapshots.volume_id = seen.volume_id
        and volume_snapshots.snapshot_at = seen.last_seen
),

disappearances as (
    -- the first snapshot of its source after a volume's last sighting is the one it vanished
    -- from (a source that stopped answering deletes nothing)
    select seen.source, seen.volume_id, instants.snapshot_at as deleted_at
    from seen
    asof inner join snapshot_instants as instants
        on instants.source = seen.source
        and instants.snapshot_at > seen.last_seen
),

final as (
    select
        latest_state.source,
        latest_state.volume_id,
        latest_state.name,
        latest_state.created_at,
        latest_state.used_bytes,
        latest_state.inode_count,
        latest_state.mount_count,
        latest_state.max_size_bytes,
        latest_state.max_file_count,
        latest_state.max_mounts,
        latest_state.last_reconciled_at,
        latest_state.status,
        latest_state.host_id,
        seen.first_seen,
        seen.last_seen,
        seen.snapshot_count,
        disappearances.deleted_at is null as is_active,
        disappearances.deleted_at
    from latest_state
    inner join seen
        on latest_state.source = seen.source
        and latest_state.volume_id = seen.volume_id
    left join disappearances
        on latest_state.source = disappearances.source
        and latest_state.volume_id = disappearances.volume_id
)

select * from final
