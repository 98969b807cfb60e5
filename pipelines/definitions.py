"""The code location: one `Definitions` holding every asset, check, job, schedule and resource."""

import dagster as dg

from pipelines.assets.ingestion import build_ingestion_assets
from pipelines.assets.maintenance import compact_lake_asset
from pipelines.assets.marts import MART_ASSETS, MART_CHECKS
from pipelines.assets.reports import REPORT_ASSETS
from pipelines.partitions import fleet_partitions, snapshot_partitions
from pipelines.resources import build_resources, cadence_minutes, configured_sources
from pipelines.schedules import build_schedules, build_sensors


def build_definitions() -> dg.Definitions:
    sources = configured_sources()
    partitions = fleet_partitions(
        snapshot_partitions(cadence_minutes()), [source.name for source in sources]
    )
    ingestion = build_ingestion_assets(partitions, sources)
    snapshot_job = dg.define_asset_job(
        "snapshot_job",
        selection=dg.AssetSelection.assets(*ingestion),
        description="Take one snapshot of the volumes API: land the raw body, publish the lake partition.",
    )
    build_job = dg.define_asset_job(
        "build_job",
        selection=dg.AssetSelection.assets(*MART_ASSETS),
        description="Build the warehouse models from the lake and swap the new warehouse in.",
    )
    report_job = dg.define_asset_job(
        "report_job",
        selection=dg.AssetSelection.assets(*REPORT_ASSETS),
        description="Write the HTML capacity report from the published warehouse.",
    )
    compaction_job = dg.define_asset_job(
        "compaction_job",
        selection=dg.AssetSelection.assets(compact_lake_asset),
        description="Compact each closed day of the lake into one sorted Parquet file.",
    )
    return dg.Definitions(
        assets=[*ingestion, *MART_ASSETS, *REPORT_ASSETS, compact_lake_asset],
        asset_checks=MART_CHECKS,
        jobs=[snapshot_job, build_job, report_job, compaction_job],
        schedules=build_schedules(snapshot_job, partitions, compaction_job),
        sensors=build_sensors(build_job),
        resources=build_resources(sources),
        executor=dg.in_process_executor,
    )


defs = build_definitions()
