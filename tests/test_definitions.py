"""The asset graph, pinned: any change to keys, groups, checks, jobs or schedules shows here."""

from __future__ import annotations

import dagster as dg

from pipelines.definitions import defs

EXPECTED_ASSETS = {
    "raw_volume_snapshots": "ingestion",
    "volume_snapshots": "ingestion",
    "warehouse/volume_snapshots": "staging",
    "warehouse/volume_observations": "staging",
    "warehouse/volumes": "marts",
    "warehouse/volume_daily": "marts",
    "warehouse/fleet_daily": "marts",
    "warehouse/capacity_trends": "marts",
    "warehouse/quota_events": "marts",
    "warehouse/quota_forecast": "marts",
    "warehouse/volume_risk": "marts",
    "warehouse/quota_forecast_history": "marts",
    "warehouse/forecast_daily_sums": "marts",
    "warehouse/forecast_backtest": "marts",
    "warehouse/forecast_accuracy": "marts",
    "compact_lake": "maintenance",
}


def _graph():
    return defs.resolve_asset_graph()


def test_definitions_load_with_the_expected_assets_and_groups():
    graph = _graph()
    groups = {key.to_user_string(): graph.get(key).group_name for key in graph.get_all_asset_keys()}
    assert {k: v for k, v in groups.items() if k in EXPECTED_ASSETS} == EXPECTED_ASSETS
    assert set(EXPECTED_ASSETS) <= set(groups)


def test_every_asset_has_a_description():
    graph = _graph()
    for key in graph.get_all_asset_keys():
        assert graph.get(key).description, key


def test_ingestion_assets_are_partitioned_by_time_and_the_lake_depends_on_raw():
    graph = _graph()
    raw, lake = dg.AssetKey("raw_volume_snapshots"), dg.AssetKey("volume_snapshots")
    for key in (raw, lake):
        assert isinstance(graph.get(key).partitions_def, dg.TimeWindowPartitionsDefinition)
    assert raw in graph.get(lake).parent_keys
    assert lake in graph.get(dg.AssetKey(["warehouse", "volume_snapshots"])).parent_keys


def test_checks_cover_uniqueness_freshness_gaps_row_drops_and_forecast_sanity():
    names = {key.name for key in _graph().asset_check_keys}
    assert {
        "unique_volume_snapshots",
        "no_negative_counts",
        "latest_snapshot_fresh",
        "no_missing_snapshots",
        "row_count_stable",
        "forecast_sane",
    } <= names


def test_hourly_schedule_snapshots_the_window_it_runs_in():
    schedule = defs.resolve_schedule_def("snapshot_schedule")
    assert schedule.cron_schedule == "5 * * * *"
    assert schedule.job_name == "snapshot_job"
    from datetime import UTC, datetime

    context = dg.build_schedule_context(
        scheduled_execution_time=datetime(2026, 11, 27, 13, 5, tzinfo=UTC),
        repository_def=defs.get_repository_def(),
    )
    [request] = list(schedule.evaluate_tick(context).run_requests or [])
    assert request.partition_key == "2026-11-27-13:00"


def test_the_warehouse_is_rebuilt_after_each_snapshot():
    sensor = defs.resolve_sensor_def("build_after_snapshot")
    assert sensor.job_name == "build_job"


def test_cadence_is_configurable_down_to_fifteen_minutes(monkeypatch):
    from pipelines.definitions import build_definitions

    monkeypatch.setenv("VOLCAP_CADENCE_MINUTES", "15")
    schedule = build_definitions().resolve_schedule_def("snapshot_schedule")
    assert schedule.cron_schedule == "3,18,33,48 * * * *"


def test_closed_days_are_compacted_daily():
    schedule = defs.resolve_schedule_def("compaction_schedule")
    assert schedule.job_name == "compaction_job"
    assert schedule.cron_schedule == "40 0 * * *"


def test_schedules_run_by_default_only_where_an_api_is_configured(monkeypatch):
    from pipelines.definitions import build_definitions

    monkeypatch.setenv("VOLCAP_API_URL", "https://api.example.com")
    on = build_definitions().resolve_schedule_def("snapshot_schedule")
    monkeypatch.delenv("VOLCAP_API_URL")
    off = build_definitions().resolve_schedule_def("snapshot_schedule")
    assert on.default_status == dg.DefaultScheduleStatus.RUNNING
    assert off.default_status == dg.DefaultScheduleStatus.STOPPED


def test_make_dev_after_the_demo_starts_no_build(monkeypatch):
    """The build sensor would fire at once on the demo's last snapshot: it is on by default only
    where an API is configured, like the schedules."""
    from pipelines.definitions import build_definitions

    monkeypatch.delenv("VOLCAP_API_URL", raising=False)
    monkeypatch.delenv("VOLCAP_SOURCES", raising=False)
    off = build_definitions().resolve_sensor_def("build_after_snapshot")
    monkeypatch.setenv("VOLCAP_API_URL", "https://api.example.com")
    on = build_definitions().resolve_sensor_def("build_after_snapshot")
    assert off.default_status == dg.DefaultSensorStatus.STOPPED
    assert on.default_status == dg.DefaultSensorStatus.RUNNING


def test_the_whole_graph_is_pinned(monkeypatch):
    """Every asset (group, deps, partitioning, checks), job, schedule and sensor, as
    tests/graph.json pins it: a change to the graph shows in review as a diff of that file
    (regenerate it with `uv run python -m tests.graph`)."""
    from pipelines.definitions import build_definitions
    from tests import graph

    for name in ("VOLCAP_API_URL", "VOLCAP_SOURCES", "VOLCAP_CADENCE_MINUTES"):
        monkeypatch.delenv(name, raising=False)
    assert graph.render(build_definitions()) == graph.PINNED.read_text(), (
        "the Dagster graph changed: review, then run `uv run python -m tests.graph`"
    )
