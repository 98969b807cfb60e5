-- Rows of volume_snapshots with a negative usage count or limit, on the days the last build
-- rebuilt ($since: every earlier day was checked by the build that made it).
-- grain: (source, volume_id, snapshot_at)
-- depends on: volume_snapshots
-- parameters: $since (first instant the published build rebuilt)
select source, volume_id, snapshot_at, used_bytes, inode_count, mount_count,
    max_size_bytes, max_file_count, max_mounts
from volume_snapshots
where snapshot_at >= $since
    and (used_bytes < 0 or inode_count < 0 or mount_count < 0
        or max_size_bytes < 0 or max_file_count < 0 or max_mounts < 0)
order by snapshot_at, source, volume_id
