-- Volumes that can take no more mounts (a signal, not a capacity risk), with their status, in
-- volume_risk's risk_rank (those at capacity risk first).
-- grain: (source, volume_id)
-- depends on: volume_risk, volumes
-- parameters: $limit (most rows returned)
with

at_limit as (
    select * from volume_risk where mount_pressure >= 1
),

final as (
    select
        at_limit.source,
        at_limit.volume_id,
        at_limit.name,
        at_limit.mount_count,
        at_limit.max_mounts,
        at_limit.mount_pressure,
        volumes.status,
        at_limit.risk,
        at_limit.risk_rank
    from at_limit
    inner join volumes
        on at_limit.source = volumes.source
        and at_limit.volume_id = volumes.volume_id
)

select * from final
order by risk_rank
limit $limit
