-- Daily utilization of each listed volume's binding resource (from volume_risk), oldest first.
-- grain: (source, volume_id)
-- depends on: volume_daily, volume_risk
-- parameters: $keys (the volumes, as source || chr(31) || volume_id)
select
    daily.source,
    daily.volume_id,
    list(
        case risk.binding_resource
            when 'bytes' then daily.used_bytes_last / nullif(daily.max_size_bytes, 0)
            else daily.inode_count_last / nullif(daily.max_file_count, 0)
        end
        order by daily.day
    ) as utilization
from volume_daily as daily
inner join volume_risk as risk
    on daily.source = risk.source
    and daily.volume_id = risk.volume_id
where daily.source || chr(31) || daily.volume_id in (select unnest($keys))
group by daily.source, daily.volume_id
