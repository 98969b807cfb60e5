-- Snapshot instants missing from a source's history: every cadence step from the source's
-- first snapshot to its latest that has no row of that source (counted per source, as the
-- no_missing_snapshots check does).
-- grain: (source, snapshot_at)
-- depends on: volume_snapshots
-- parameters: $cadence (minutes between snapshots)
with

bounds as (
    select source, min(snapshot_at) as earliest, max(snapshot_at) as latest
    from volume_snapshots
    group by source
),

expected as (
    select source, unnest(generate_series(earliest, latest, to_minutes($cadence))) as snapshot_at
    from bounds
),

present as (
    select distinct source, snapshot_at from volume_snapshots
)

select snapshot_at, source from expected
anti join present using (source, snapshot_at)
order by snapshot_at, source
