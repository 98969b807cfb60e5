-- Fleet usage and byte quota at every snapshot, every source together.
-- grain: snapshot_at
-- depends on: volume_snapshots
-- parameters: none
select
    snapshot_at,
    sum(used_bytes) as used_bytes,
    sum(max_size_bytes) as max_size_bytes
from volume_snapshots
group by snapshot_at
order by snapshot_at
