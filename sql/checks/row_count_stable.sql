-- Snapshots within $window of the latest one with a share of rows over $max_drop_share fewer
-- than the source's snapshot before (a partial fetch, or a mass delete worth a look), the
-- largest drop first.
-- grain: (source, snapshot_at)
-- depends on: volume_daily, volume_snapshots
-- parameters: $window (interval looked back), $max_drop_share (null: every drop, largest first)
with

counts as (
    select source, snapshot_at, count(*) as n from volume_snapshots
    where snapshot_at >= (select max(last_snapshot_at) from volume_daily) - $window
    group by source, snapshot_at
),

drops as (
    select source, snapshot_at, n,
        lag(n) over (partition by source order by snapshot_at) as previous
    from counts
),

final as (
    select source, snapshot_at, n as row_count, previous as previous_row_count,
        1 - n / previous as drop_share
    from drops
    where previous is not null
)

select * from final
where $max_drop_share is null or drop_share > $max_drop_share
order by drop_share desc, snapshot_at, source
