-- The most urgent volumes, already full ones included, in volume_risk's risk_rank: the preview
-- on the volume_risk asset in Dagster.
-- grain: (source, volume_id)
-- depends on: volume_risk
-- parameters: $limit (most rows returned)
select source, volume_id, name, binding_resource, utilization, days_to_full, full_at, state, risk
from volume_risk
where risk <> 'ok'
order by risk_rank
limit $limit
