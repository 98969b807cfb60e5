-- One row per volume per snapshot: the lake's columns and types, duplicates removed.
-- grain: (source, volume_id, snapshot_at); volume ids are unique only within a source (fleet)
-- depends on: lake_volume_snapshots (source view over this build's links to the lake files)
-- parameters: $as_of (snapshots after it are ignored, so a past build can be replayed)
-- materialized: view (the hourly history lives once, in the lake's Parquet files: no build
--   copies it; $as_of is written into the view as a literal)
-- A snapshot stored twice (an hourly file beside its day's compacted file) keeps the row
-- observed last: such a day is deduplicated once, when the build links the lake
-- (pipelines/warehouse/lake_view.py `link_lake`), so a lake without such files is never sorted.
-- columns:
--   source: the fleet the row came from (`default` without a sources file); constant per lake
--     file
--   volume_id: the API's `id`: the volume's identity within its source
--   name: display name (never used as a path)
--   created_at: when the volume was created (UTC)
--   used_bytes: bytes stored, as of last_reconciled_at
--   inode_count: inodes used, as of last_reconciled_at
--   mount_count: active or paused mounts
--   max_size_bytes: enforced storage quota in bytes; null = unlimited (elastic deployments
--     raise it)
--   max_file_count: enforced file-count (inode) quota; null = unlimited
--   max_mounts: enforced concurrent-mount limit; null = unlimited
--   last_reconciled_at: when the usage figures were measured; null = never reconciled
--   status: `available`, `attached`, `degraded` or `error` (unknown values kept verbatim)
--   host_id: deprecated diagnostic; not identity (nullable)
--   snapshot_at: the snapshot's instant: the start of its schedule window (UTC)
--   observed_at: the API's clock (its `Date` header) when the snapshot was served
with

lake as (
    select *
    from lake_volume_snapshots
    -- the partition filter lets DuckDB skip whole days without opening their files
    where snapshot_date <= cast($as_of as date)
        and snapshot_at <= $as_of
),

final as (
    select
        source,
        volume_id,
        name,
        created_at,
        used_bytes,
        inode_count,
        mount_count,
        max_size_bytes,
        max_file_count,
        max_mounts,
        last_reconciled_at,
        status,
        host_id,
        snapshot_at,
        observed_at
    from lake
)

select * from final
