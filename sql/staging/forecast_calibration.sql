-- How far each end of the production forecast's 80% interval must move to hold 80% of what
-- happened: split-conformal margins per source, horizon bucket of the predicted days to full
-- and kind of forecast (quota_forecast's `kind`, known at the origin), as known at each
-- backtest origin (00:00 UTC of a day): the backtest scores each origin's interval as it would
-- have been published then, and quota_forecast uses the latest origin's (today's 00:00:
-- outcomes known by the day's start).
-- Evidence: the volcap forecasts replayed at the origins of the $calibration_days days before
-- the instant (volcap_replay: the model's own interval and kind), beside their fills
-- (quota_fills).
-- Censoring: a margin m moves the late end to high + m x predicted days; it is judged on the
-- forecasts whose moved end had passed by the instant, filled or not, so a slow fill is never
-- left out for being slow (judging fills as they come would favour early ones). The late
-- end takes the smallest margin (up to 20 predicted days) leaving at most 10% of its known
-- outcomes late, or is unbounded when none does; the early end then the smallest margin
-- keeping all misses within 20% (under an unbounded late end, 20% of the known fills: a
-- forecast not filled under it is never scored, as in forecast_backtest's in_interval).
-- Kinds and fallbacks: a (bucket, kind) with $calibration_min_scores outcomes known at margin 0
-- (its model early end passed) has margins of its own (calibrated_from `kind`); else its
-- kind's over all buckets (`kind_pooled`), else its bucket's over all kinds (`bucket`), else
-- its source's over all (`pooled`), else the model's interval stands (`none`).
-- Narrowing (a margin below 0, moving an end towards the predicted days, never past it) is
-- taken only from the forecast's own kind (`kind`, `kind_pooled`), and for the early end
-- only when that kind has $calibration_min_scores fills known and the narrowed end leaves at
-- most 40% of them (twice the miss budget) before it: forecasts that never fill (a quota
-- raised in time, a cleanup) are never early, so they alone must not license cutting the
-- early end of the forecasts that do fill. Pooled margins across kinds only widen: one kind's
-- imprecise forecasts would otherwise cut through another's precise ones.
-- Instants: the scored origins (backtest_origins); the replay also keeps the $calibration_days
-- days before the first, so each instant's evidence is whole. An instant's margins read only
-- replays and fills from before it: an incremental build computes the instants after its first
-- changed day's 00:00, keeps the earlier ones and drops those that left backtest_origins.
-- grain: (source, calibrated_at, horizon, kind)
-- depends on: volcap_replay (source: kept by the build engine, pipelines/replay.py),
--   quota_fills, backtest_origins
-- parameters: $as_of, $since, $calibration_days, $calibration_min_scores
-- incremental: calibrated_at after $since (an incremental build replaces the instants after
--   $since's 00:00: the instant at it reads only replays and fills from before it)
-- incremental keeps: calibrated_at in (select origin from backtest_origins)
-- columns:
--   source: the fleet
--   calibrated_at: the backtest origin the margins hold for (00:00 UTC of a day)
--   horizon: bucket of the predicted time to full: `≤ 7 d`, `≤ 30 d` or `> 30 d` (as in
--     forecast_accuracy)
--   kind: quota_forecast's kind of forecast: `steady`, `noisy`, `shifted`, `rate_change` or
--     `short`
--   above_days: the bucket holds predicted days to full above this...
--   up_to_days: ...and up to this (null: no upper end)
--   scores: the bucket's forecasts of this kind whose model early end had passed by
--     calibrated_at
--   calibrated_from: `kind` (its own outcomes), `kind_pooled` (its kind's over all buckets),
--     `bucket` (its bucket's over all kinds), `pooled` (its source's over all) or `none` (too
--     few known: the model's interval stands)
--   margin_low: the early end moves earlier by this many times the predicted days (later,
--     when negative)
--   margin_high: the late end moves later by this many times the predicted days (earlier,
--     when negative); null when unbounded
--   late_unbounded: no margin held 90% of the known outcomes: the late end is unbounded
with

horizons as (
    select * from (
        values ('≤ 7 d', 0.0, 7.0), ('≤ 30 d', 7.0, 30.0), ('> 30 d', 30.0, null)
    ) as horizons (horizon, above_days, up_to_days)
),

kinds as (
    -- quota_forecast's `kind`: how far its fit can be trusted, known at the origin
    select * from (
        values ('steady'), ('noisy'), ('shifted'), ('rate_change'), ('short')
    ) as kinds (kind)
),

forecasts as (
    -- the model's own forecasts of a fill (already full at the origin: nothing to forecast)
    select *
    from volcap_replay
    where state <> 'full' and days_to_full is not null and origin <= $as_of
        -- those the instants computed read: the $calibration_days days before the first
        and origin >= cast($since as timestamptz) - to_days(cast($calibration_days as integer))
),

first_fills as (
    -- each day's first fill (quota_fills) from the earliest origin read on: the as-of join
    -- sorts only these
    select source, volume_id, resource, snapshot_at
    from quota_fills
    where snapshot_at >= (select min(origin) from forecasts)
),

realized as (
    select
        forecasts.*,
        fills.snapshot_at as filled_at
    from forecasts
    asof left join first_fills as fills
        on forecasts.source = fills.source
        and forecasts.volume_id = fills.volume_id
        and forecasts.resource = fills.resource
        and forecasts.origin <= fills.snapshot_at
),

instants as (
    -- the scored origins this build computes (a full build: all of them)
    select distinct replay.source, replay.origin as calibrated_at
    from volcap_replay as replay
    semi join backtest_origins as origins
        on replay.origin = origins.origin
    where replay.origin <= $as_of and replay.origin > $since
),

known as (
    -- each forecast beside each later instant within $calibration_days, with the fill if it
    -- came before the instant and the days elapsed by then
    select
        instants.calibrated_at,
        realized.source,
        horizons.horizon,
        coalesce(realized.kind, 'short') as kind,
        realized.days_to_full as predicted,
        realized.days_to_full_low as low,
        realized.days_to_full_high as high,
        case when realized.filled_at < instants.calibrated_at
            then (epoch(realized.filled_at) - epoch(realized.origin)) / 86400.0
        end as filled_days,
        (epoch(instants.calibrated_at) - epoch(realized.origin)) / 86400.0 as elapsed
    from instants
    inner join realized
        on instants.source = realized.source
        and realized.origin < instants.calibrated_at
        and realized.origin >= instants.calibrated_at - to_days(cast($calibration_days as integer))
    inner join horizons
        on realized.days_to_full > horizons.above_days
        and (horizons.up_to_days is null or realized.days_to_full <= horizons.up_to_days)
        or (horizons.above_days = 0 and realized.days_to_full = 0)
),

margins as (
    -- fine near zero, where a narrowing end is decided; coarser as margins grow (each margin
    -- is one more pass over the known outcomes). Below zero narrows (only from a kind's own
    -- outcomes, below)
    select step / 10.0 as margin from generate_series(-9, 20) as steps (step)
    where step not between -1 and 0
    union all
    select step / 100.0 from generate_series(-9, 9) as steps (step)
    union all
    select step / 2.0 from generate_series(5, 20) as steps (step)
    union all
    select step * 1.0 from generate_series(11, 20) as steps (step)
),

moved as (
    -- each candidate margin's ends, moved out by margin x the predicted days (at least an hour)
    select
        known.*,
        margins.margin,
        -- as applied: an end never moves past the predicted days
        least(known.low - margins.margin * greatest(known.predicted, 1 / 24), known.predicted)
            as moved_low,
        greatest(known.high + margins.margin * greatest(known.predicted, 1 / 24), known.predicted)
            as moved_high
    from known
    cross join margins
),

trials as (
    -- each candidate margin against the forecasts whose moved end has passed by the instant:
    -- their side of it is known. The choice never looks at the outcome (a fill that came early
    -- does not count before a slow one could), so slow fills are not under-counted
    select
        calibrated_at,
        source,
        horizon,
        kind,
        margin,
        count(*) filter (where elapsed >= moved_high) as late_known,
        count(*) filter (
            where elapsed >= moved_high and coalesce(filled_days, 'infinity'::double) > moved_high
        ) as late,
        count(*) filter (where elapsed >= moved_low) as early_known,
        count(filled_days) filter (where elapsed >= moved_low) as early_known_fills,
        count(*) filter (where filled_days < moved_low) as early,
        count(filled_days) as fills
    from moved
    group by all
),

bucket_trials as (
    -- each kind's trials per bucket, the bucket's over all kinds (kind `*`) and the source's
    -- over all buckets (horizon and kind `*`); margins below zero only for a kind's own
    select *
    from (
        select
            calibrated_at,
            source,
            coalesce(horizon, '*') as horizon,
            coalesce(kind, '*') as kind,
            margin,
            sum(late_known) as late_known,
            sum(late) as late,
            sum(early_known) as early_known,
            sum(early_known_fills) as early_known_fills,
            sum(early) as early,
            sum(fills) as fills
        from trials
        group by grouping sets (
            (calibrated_at, source, horizon, kind, margin),
            (calibrated_at, source, kind, margin),
            (calibrated_at, source, horizon, margin),
            (calibrated_at, source, margin)
        )
    )
    where margin >= 0 or kind <> '*'
),

late_ends as (
    -- the late end first: the smallest margin leaving at most 10% of the known outcomes past
    -- it; when even the widest leaves more, the late end is unbounded
    select
        calibrated_at,
        source,
        horizon,
        kind,
        coalesce(max(early_known) filter (where margin = 0), 0) as scores,
        min(margin) filter (
            where late_known >= $calibration_min_scores and late <= 0.1 * late_known
        ) as margin_high
    from bucket_trials
    group by calibrated_at, source, horizon, kind
),

late_shares as (
    select
        late_ends.*,
        late_ends.scores >= $calibration_min_scores as evidence,
        coalesce(trials.late / nullif(trials.late_known, 0), 0.0) as late_share
    from late_ends
    left join bucket_trials as trials
        on late_ends.calibrated_at = trials.calibrated_at
        and late_ends.source = trials.source
        and late_ends.horizon = trials.horizon
        and late_ends.kind = trials.kind
        and late_ends.margin_high = trials.margin
),

sides as (
    -- then the early end: the smallest margin keeping all misses within 20%. Under an
    -- unbounded late end a forecast that has not filled is never scored (forecast_backtest's
    -- in_interval: it may still fill within, or never), so the budget is 20% of the fills
    select
        late_shares.calibrated_at,
        late_shares.source,
        late_shares.horizon,
        late_shares.kind,
        late_shares.scores,
        late_shares.evidence,
        late_shares.margin_high,
        coalesce(min(trials.margin) filter (
            where (
                late_shares.margin_high is not null
                and trials.early_known >= $calibration_min_scores
                and trials.early <= (0.2 - late_shares.late_share) * trials.early_known
                or late_shares.margin_high is null
                and trials.early <= 0.2 * trials.early_known_fills
            )
                and (trials.margin >= 0 or (
                    trials.fills >= $calibration_min_scores and trials.early <= 0.4 * trials.fills
                ))
        ), max(trials.margin)) as margin_low
    from late_shares
    inner join bucket_trials as trials
        on late_shares.calibrated_at = trials.calibrated_at
        and late_shares.source = trials.source
        and late_shares.horizon = trials.horizon
        and late_shares.kind = trials.kind
    group by all
),

fallbacks as (
    -- where a (bucket, kind)'s margins come from, in order: its own outcomes, its kind's over
    -- all buckets, its bucket's over all kinds, its source's over all
    select * from (
        values
            (1, 'kind', false, false),
            (2, 'kind_pooled', true, false),
            (3, 'bucket', false, true),
            (4, 'pooled', true, true)
    ) as fallbacks (rank, calibrated_from, any_horizon, any_kind)
),

chosen as (
    -- per instant, bucket and kind, the first fallback with evidence, all its columns at once
    select
        instants.source,
        instants.calibrated_at,
        horizons.horizon,
        kinds.kind,
        fallbacks.calibrated_from,
        sides.margin_low,
        sides.margin_high
    from instants
    cross join horizons
    cross join kinds
    cross join fallbacks
    inner join sides
        on instants.source = sides.source
        and instants.calibrated_at = sides.calibrated_at
        and sides.horizon = if(fallbacks.any_horizon, '*', horizons.horizon)
        and sides.kind = if(fallbacks.any_kind, '*', kinds.kind)
    where sides.evidence
    qualify row_number() over (
        partition by instants.source, instants.calibrated_at, horizons.horizon, kinds.kind
        order by fallbacks.rank
    ) = 1
),

final as (
    -- no fallback with evidence (`none`): the model's interval stands
    select
        instants.source,
        instants.calibrated_at,
        horizons.horizon,
        kinds.kind,
        horizons.above_days,
        horizons.up_to_days,
        coalesce(own.scores, 0) as scores,
        coalesce(chosen.calibrated_from, 'none') as calibrated_from,
        case when chosen.calibrated_from is null then 0.0 else chosen.margin_low end
            as margin_low,
        case when chosen.calibrated_from is null then 0.0 else chosen.margin_high end
            as margin_high,
        coalesce(chosen.calibrated_from is not null and chosen.margin_high is null, false)
            as late_unbounded
    from instants
    cross join horizons
    cross join kinds
    left join sides as own
        on instants.source = own.source
        and instants.calibrated_at = own.calibrated_at
        and horizons.horizon = own.horizon
        and kinds.kind = own.kind
    left join chosen
        on instants.source = chosen.source
        and instants.calibrated_at = chosen.calibrated_at
        and horizons.horizon = chosen.horizon
        and kinds.kind = chosen.kind
)

select * from final
