-- The 20 latest quota changes, newest first, with the volume's name.
-- grain: (source, volume_id, limit_name, changed_at)
-- depends on: quota_events, volumes
-- parameters: none
select events.*, volumes.name
from quota_events as events
left join volumes
    on events.source = volumes.source
    and events.volume_id = volumes.volume_id
order by events.changed_at desc, events.volume_id, events.limit_name
limit 20
