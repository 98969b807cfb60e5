-- The fleet's growth per day, every source added up (a slope of a sum is the sum of the
-- slopes); no row before capacity_trends has a fleet row.
-- grain: one row, or none
-- depends on: capacity_trends
-- parameters: none
select
    sum(columns(lambda c: c like '%growth_per_day%')),
    min(observations_30d) as observations_30d
from capacity_trends
where scope = 'fleet'
having count(*) > 0
