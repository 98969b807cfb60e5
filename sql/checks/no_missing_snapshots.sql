-- Snapshot instants missing within $window before each source's latest snapshot: every
-- $cadence step (from the source's first snapshot at most) that has no row of that source.
-- grain: (source, snapshot_at)
-- depends on: volume_daily, volume_snapshots
-- parameters: $cadence (minutes between snapshots), $window (interval looked back)
with

bounds as (
    -- from the daily rollup: the same instants, without reading the hourly history
    select source, max(last_snapshot_at) as latest, min(first_snapshot_at) as earliest
    from volume_daily
    group by source
),

expected as (
    select source, unnest(generate_series(
        greatest(latest - $window + to_minutes($cadence), earliest),
        latest,
        to_minutes($cadence)
    )) as snapshot_at
    from bounds
),

present as (
    select distinct volume_snapshots.source, volume_snapshots.snapshot_at
    from volume_snapshots
    inner join bounds on volume_snapshots.source = bounds.source
    where volume_snapshots.snapshot_at >= bounds.latest - $window
)

select snapshot_at, source from expected
anti join present using (source, snapshot_at)
order by snapshot_at, source
