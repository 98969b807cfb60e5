-- Volumes that may fill within the warning horizon and are not full yet, in volume_risk's
-- risk_rank (soonest first by the early end of the interval).
-- grain: (source, volume_id)
-- depends on: volume_risk
-- parameters: $limit (most rows returned)
select * from volume_risk
where risk <> 'ok' and state <> 'full'
order by risk_rank
limit $limit
