-- The ten active volumes growing fastest over the last 7 days, with their risk.
-- grain: (source, volume_id)
-- depends on: capacity_trends, volumes, volume_risk
-- parameters: none
select
    trends.source,
    trends.volume_id,
    volumes.name,
    volumes.used_bytes,
    volumes.max_size_bytes,
    trends.bytes_growth_per_day_7d,
    trends.bytes_growth_per_day_30d,
    risk.risk,
    risk.binding_resource,
    risk.days_to_full
from capacity_trends as trends
inner join volumes
    on trends.source = volumes.source
    and trends.volume_id = volumes.volume_id
left join volume_risk as risk
    on trends.source = risk.source
    and trends.volume_id = risk.volume_id
where trends.scope = 'volume' and trends.bytes_growth_per_day_7d is not null
order by trends.bytes_growth_per_day_7d desc, trends.volume_id
limit 10
