-- (source, volume_id, snapshot_at) keys that volume_snapshots holds more than once, with how
-- many rows hold each. Checked on the days the last build rebuilt ($since): every earlier
-- day was checked by the build that made it.
-- grain: (source, volume_id, snapshot_at)
-- depends on: volume_snapshots
-- parameters: $since (first instant the published build rebuilt)
select source, volume_id, snapshot_at, count(*) as copies
from volume_snapshots
where snapshot_at >= $since
group by all
having count(*) > 1
order by snapshot_at, source, volume_id
