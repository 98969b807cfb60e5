-- The sources (fleets) the warehouse knows, by name.
-- grain: source
-- depends on: volumes
-- parameters: none
select distinct source from volumes order by source
