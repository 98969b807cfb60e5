"""The code location: one `Definitions` holding every asset, check, job, schedule and resource."""

from __future__ import annotations

import dagster as dg

from pipelines.assets.ingestion import build_ingestion_assets
from pipelines.partitions import snapshot_partitions
from pipelines.resources import build_resources, cadence_minutes
from pipelines.schedules import build_schedules


def build_definitions() -> dg.Definitions:
    partitions = snapshot_partitions(cadence_minutes())
    ingestion = build_ingestion_assets(partitions)
    snapshot_job = dg.define_asset_job(
        "snapshot_job",
        selection=dg.AssetSelection.assets(*ingestion),
        partitions_def=partitions,
        description="Take one snapshot of the volumes API: land the raw body, publish the lake partition.",
    )
    return dg.Definitions(
        assets=[*ingestion],
        jobs=[snapshot_job],
        schedules=build_schedules(snapshot_job, partitions),
        resources=build_resources(),
        executor=dg.in_process_executor,
    )


defs = build_definitions()
