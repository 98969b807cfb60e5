"""Run the Dagster jobs in process for the CLI, recording runs in `$DAGSTER_HOME` when set."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import dagster as dg

from pipelines import config
from pipelines.sources import DEFAULT_SOURCE

QUIET = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}


class RunFailed(RuntimeError):
    """A Dagster run failed; the message is the underlying reason."""


@dataclass
class SnapshotOutcome:
    partition_key: str
    rows: int
    quarantined: int
    path: str
    bytes_fetched: int
    source: str = DEFAULT_SOURCE
    #: the time window's key (the partition key itself for the default source alone)
    window_key: str = ""


#: Written into a DAGSTER_HOME that has no dagster.yaml: telemetry off, because volcap never
#: sends traffic anywhere but the configured API (and it keeps the CLI's output to one line).
DEFAULT_INSTANCE_YAML = "telemetry:\n  enabled: false\n"


def ensure_instance_home(home: str | os.PathLike[str]) -> None:
    """Create DAGSTER_HOME with a telemetry-off dagster.yaml unless one exists."""
    path = Path(home)
    path.mkdir(parents=True, exist_ok=True)
    config = path / "dagster.yaml"
    if not config.exists():
        config.write_text(DEFAULT_INSTANCE_YAML)


def instance() -> dg.DagsterInstance:
    """The instance at $DAGSTER_HOME (runs recorded there), else an ephemeral one."""
    home = config.dagster_home()
    if home:
        ensure_instance_home(home)
        return dg.DagsterInstance.get()
    return dg.DagsterInstance.ephemeral()


def failure_reason(result: Any) -> str:
    """The innermost error message of the first failed step."""
    for event in result.all_events:
        if event.is_step_failure:
            error = event.step_failure_data.error
            while error is not None and error.cause is not None:
                error = error.cause
            if error is not None:
                message = (error.message or error.cls_name).strip().splitlines()[-1]
                # "pipelines.ingest.OutsideWindow: ..." → "OutsideWindow: ..."
                head, sep, tail = message.partition(": ")
                return f"{head.rsplit('.', 1)[-1]}{sep}{tail}" if sep else message
    return "the run failed"


def _execute(
    job_name: str,
    dagster_instance: dg.DagsterInstance | None,
    *,
    run_config: dict[str, Any] | None = None,
    tags: dict[str, str] | None = None,
    resources: Mapping[str, object] | None = None,
    **kwargs: Any,
) -> Any:
    """Run one of the code location's jobs in process, quietly; RunFailed with the reason."""
    from pipelines.definitions import defs

    result = defs.resolve_job_def(job_name).execute_in_process(
        instance=dagster_instance or instance(),
        raise_on_error=False,
        run_config={**QUIET, **(run_config or {})},
        tags={"volcap/trigger": "cli", **(tags or {})},
        resources=resources,
        **kwargs,
    )
    if not result.success:
        raise RunFailed(failure_reason(result))
    return result


def _metadata(result: Any, node: str) -> dict[str, Any]:
    mats = result.asset_materializations_for_node(node)
    return {k: getattr(v, "value", v) for k, v in mats[-1].metadata.items()} if mats else {}


def snapshot_sources() -> list[str]:
    """The sources the code location snapshots (`default` alone without a sources file)."""
    from pipelines.definitions import defs

    partitions = defs.resolve_job_def("snapshot_job").partitions_def
    if isinstance(partitions, dg.MultiPartitionsDefinition):
        return list(partitions.get_partitions_def_for_dimension("source").get_partition_keys())
    return [DEFAULT_SOURCE]


def run_snapshot(
    at: datetime,
    *,
    source: str = DEFAULT_SOURCE,
    dagster_instance: dg.DagsterInstance | None = None,
    resources: Mapping[str, object] | None = None,
) -> SnapshotOutcome:
    """Materialize `source`'s snapshot partition containing `at` through the snapshot job
    (with `resources` in place of the configured ones, if given)."""
    from pipelines.definitions import defs
    from pipelines.partitions import key_for

    job = defs.resolve_job_def("snapshot_job")
    partitions = job.partitions_def
    assert partitions is not None
    key = key_for(partitions, at, source)
    result = _execute("snapshot_job", dagster_instance, partition_key=key, resources=resources)
    raw = _metadata(result, "raw_volume_snapshots")
    lake = _metadata(result, "volume_snapshots")
    return SnapshotOutcome(
        partition_key=key,
        rows=int(lake.get("dagster/row_count", 0)),
        quarantined=int(lake.get("rows_quarantined", 0)),
        path=str(lake.get("path", "")),
        bytes_fetched=int(raw.get("bytes", 0)),
        source=source,
        window_key=key.keys_by_dimension["time"] if isinstance(key, dg.MultiPartitionKey) else key,
    )


@dataclass
class SnapshotsOutcome:
    """One run per source: what landed, and why the others failed (source → reason)."""

    landed: list[SnapshotOutcome]
    failed: dict[str, str]


def run_snapshots(
    at: datetime,
    sources: list[str],
    *,
    dagster_instance: dg.DagsterInstance | None = None,
) -> SnapshotsOutcome:
    """Snapshot each source in its own run; a failing source does not stop the others."""
    outcome = SnapshotsOutcome(landed=[], failed={})
    for source in sources:
        try:
            outcome.landed.append(
                run_snapshot(at, source=source, dagster_instance=dagster_instance)
            )
        except RunFailed as failure:
            outcome.failed[source] = str(failure)
    return outcome


@dataclass
class BuildOutcome:
    rows: dict[str, int]
    critical: int
    warning: int

    @property
    def summary(self) -> str:
        from pipelines.warehouse import build_summary

        return build_summary(self.rows, self.critical, self.warning)


def run_build(
    *,
    full: bool = False,
    dagster_instance: dg.DagsterInstance | None = None,
    resources: Mapping[str, object] | None = None,
) -> BuildOutcome:
    """Materialize every warehouse model (and run their checks) through the build job."""
    result = _execute(
        "build_job",
        dagster_instance,
        run_config={"ops": {"warehouse_models": {"config": {"full": full}}}},
        tags={"volcap/full": str(full).lower()},
        resources=resources,
    )
    rows: dict[str, int] = {}
    critical = warning = 0
    for event in result.get_asset_materialization_events():
        mat = event.step_materialization_data.materialization
        meta: dict[str, Any] = {k: getattr(v, "value", v) for k, v in mat.metadata.items()}
        rows[mat.asset_key.path[-1]] = int(meta.get("dagster/row_count", 0))
        if mat.asset_key.path[-1] == "volume_risk":
            critical, warning = int(meta.get("critical", 0)), int(meta.get("warning", 0))
    return BuildOutcome(rows=rows, critical=critical, warning=warning)


@dataclass
class ReportOutcome:
    path: Path
    #: every snapshot so far listed no volume
    no_volumes_yet: bool = False


def run_report(
    *,
    dagster_instance: dg.DagsterInstance | None = None,
    resources: Mapping[str, object] | None = None,
) -> ReportOutcome:
    """Materialize the capacity report through the report job."""
    result = _execute("report_job", dagster_instance, resources=resources)
    metadata = _metadata(result, "capacity_report")
    return ReportOutcome(Path(str(metadata["path"])), bool(metadata.get("no_volumes_yet")))
