-- Sources whose latest snapshot is older than $max_age at $now, stalest first. Without
-- volumes yet, the build's as_of (the latest, empty, snapshot) stands for the fleet, with a
-- null source.
-- grain: (source)
-- depends on: volume_daily, build._build_info
-- parameters: $now (the instant checked), $max_age (interval; null: every source, stalest first)
with

per_source as (
    -- from the daily rollup: the same instants, without reading the hourly history
    select source, max(last_snapshot_at) as latest_snapshot_at
    from volume_daily
    group by source
),

no_volumes_yet as (
    select cast(null as varchar) as source, as_of as latest_snapshot_at
    from build._build_info
    where not exists (from per_source)
),

latest as (
    select * from per_source
    union all
    select * from no_volumes_yet
),

final as (
    select source, latest_snapshot_at, $now - latest_snapshot_at as age
    from latest
)

select * from final
where $max_age is null or latest_snapshot_at is null or age > $max_age
order by latest_snapshot_at nulls first, source
