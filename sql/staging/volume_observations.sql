-- One row per volume per reconciliation: usage is measured at last_reconciled_at, so a value
-- seen again in later snapshots with the same reconciliation time is one observation, not two.
-- grain: (volume_id, reconciled_at)
-- depends on: volume_snapshots
-- parameters: none
with

snapshots as (
    select * from volume_snapshots
    where last_reconciled_at is not null
),

final as (
    select
        volume_id,
        last_reconciled_at as reconciled_at,
        arg_min(used_bytes, snapshot_at) as used_bytes,
        arg_min(inode_count, snapshot_at) as inode_count,
        min(snapshot_at) as first_seen_at,
        count(*) as snapshot_count
    from snapshots
    group by volume_id, last_reconciled_at
)

select * from final
