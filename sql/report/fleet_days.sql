-- The fleet at the end of each UTC day, every source added up (fleet_daily is per source).
-- grain: day
-- depends on: fleet_daily
-- parameters: none
with

per_source as (
    select * from fleet_daily
),

final as (
    select
        day,
        max(snapshot_at) as snapshot_at,
        sum(columns(lambda c: c in (
            'volumes', 'volumes_available', 'volumes_attached', 'volumes_degraded',
            'volumes_error', 'volumes_other_status', 'used_bytes', 'inode_count',
            'bounded_quota_bytes', 'bounded_used_bytes', 'unlimited_volumes',
            'hosts_diagnostic'
        ))),
        sum(bounded_used_bytes) / nullif(sum(bounded_quota_bytes), 0) as bounded_utilization
    from per_source
    group by day
)

select * from final order by day
