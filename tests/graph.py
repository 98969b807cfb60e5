"""The whole Dagster graph as plain data, pinned in tests/graph.json (tests/test_definitions.py).

Regenerate after an intended change, and review the diff: `uv run python -m tests.graph`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import dagster as dg

PINNED = Path(__file__).with_name("graph.json")


def describe(defs: dg.Definitions) -> dict[str, Any]:
    """Every asset (group, deps, partitioning, checks), job, schedule and sensor, sorted."""
    graph = defs.resolve_asset_graph()
    checks: dict[str, list[str]] = {}
    for check in graph.asset_check_keys:
        checks.setdefault(check.asset_key.to_user_string(), []).append(check.name)
    assets = {}
    for key in sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string()):
        node = graph.get(key)
        name = key.to_user_string()
        assets[name] = {
            "group": node.group_name,
            "deps": sorted(parent.to_user_string() for parent in node.parent_keys),
            "partitions": type(node.partitions_def).__name__ if node.partitions_def else None,
            "checks": sorted(checks.get(name, [])),
        }
    repository = defs.get_repository_def()
    jobs = {
        job.name: sorted(key.to_user_string() for key in job.asset_layer.selected_asset_keys)
        for job in sorted(repository.get_all_jobs(), key=lambda j: j.name)
        if not job.name.startswith("__")
    }
    schedules = {
        schedule.name: {
            "cron": schedule.cron_schedule,
            "job": schedule.job_name,
            "timezone": schedule.execution_timezone,
        }
        for schedule in sorted(repository.schedule_defs, key=lambda s: s.name)
    }
    sensors = {
        sensor.name: {"jobs": sorted(target.job_name for target in sensor.targets)}
        for sensor in sorted(repository.sensor_defs, key=lambda s: s.name)
    }
    return {"assets": assets, "jobs": jobs, "schedules": schedules, "sensors": sensors}


def render(defs: dg.Definitions) -> str:
    return json.dumps(describe(defs), indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":
    from pipelines.definitions import build_definitions

    PINNED.write_text(render(build_definitions()))
    print(f"wrote {PINNED}")
