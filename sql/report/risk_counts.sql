-- Active volumes counted by risk, by state and at their mount limit (from volume_risk).
-- grain: (counted, value): counted is `risk`, `state` or `mounts` (value `at_limit`)
-- depends on: volume_risk
-- parameters: none
select 'risk' as counted, risk as value, count(*) as volumes
from volume_risk
group by risk
union all
select 'state', state, count(*)
from volume_risk
group by state
union all
select 'mounts', 'at_limit', count(*)
from volume_risk
where mount_pressure >= 1
