"""Concurrency: racing ingests of one partition, and a reader across many warehouse swaps."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
import yaml

from fakes.faultserver import FaultServer, Reply
from fakes.payloads import body, volume
from pipelines import lake
from pipelines.lake import DataDir
from pipelines.warehouse import build_warehouse
from simulator import DEFAULT_START
from tests.reliability import harness as h
from tests.reliability.score import record

FLEET_A = [f"vol-{n:06d}" for n in range(1, 101)]
FLEET_B = [f"vol-{n:06d}" for n in range(201, 351)]


def _now_away_from_the_hour() -> datetime:
    now = datetime.now(UTC)
    if now.minute == 59 and now.second > 40:
        time.sleep(61 - now.second)
        now = datetime.now(UTC)
    return now


def race(tmp_path, rounds: int) -> dict[str, int]:
    """Two writers per round, each served a different fleet; the partition must end up
    exactly one of them, consistent with the raw body its sidecar commits to."""
    replies = [
        Reply(body=body([volume(int(v[4:])) for v in fleet])) for fleet in (FLEET_A, FLEET_B)
    ]
    data_dir, cwd = tmp_path / "data", tmp_path / "cwd"
    cwd.mkdir()
    figures = {"rounds": 0, "interleaved": 0, "duplicate_rows": 0, "extra_files": 0, "failed": 0}
    with FaultServer(lambda n: replies[n % 2]) as srv:
        for _ in range(rounds):
            at = _now_away_from_the_hour()
            job = {
                "kind": "ingest",
                "url": srv.url,
                "at": at.isoformat(),
                "data_dir": str(data_dir),
                "cwd": str(cwd),
            }
            writers = [h.start(job), h.start(job)]
            for proc in writers:
                proc.join(120)
                figures["failed"] += proc.exitcode != 0
            data = DataDir.at(data_dir)
            start = h.hour_window(at).start
            frame = pl.read_parquet(data.lake_file(start))
            ids = sorted(frame["volume_id"].to_list())
            figures["rounds"] += 1
            figures["interleaved"] += ids not in (FLEET_A, FLEET_B)
            figures["duplicate_rows"] += frame.height - frame["volume_id"].n_unique()
            folder = data.lake_file(start).parent
            figures["extra_files"] += len(list(folder.iterdir())) - 1
            sidecar = lake.read_sidecar(data.raw_sidecar(start))
            assert sidecar["validation"]["rows_in"] == frame.height  # lake matches its raw
            assert h.audit(data_dir).clean
    return figures


@pytest.mark.parametrize(
    "rounds", [pytest.param(3, id="3"), pytest.param(20, id="20", marks=pytest.mark.slow)]
)
def test_two_ingests_of_one_partition_publish_one_of_them_whole(tmp_path, rounds):
    figures = race(tmp_path, rounds)
    record(
        "concurrent ingests",
        injected=figures["rounds"],
        survived=figures["rounds"] - figures["interleaved"],
        duplicate_rows=figures["duplicate_rows"],
        interleaved=figures["interleaved"],
    )
    assert figures == {
        "rounds": rounds,
        "interleaved": 0,
        "duplicate_rows": 0,
        "extra_files": 0,
        "failed": 0,
    }


def test_a_reader_holding_the_warehouse_sees_no_errors_across_20_builds(tmp_path, simulator):
    sim = simulator(volumes=200, seed=9, token=h.CANARY)
    data_dir, cwd = tmp_path / "data", tmp_path / "cwd"
    cwd.mkdir()
    at = DEFAULT_START + timedelta(days=2, minutes=5)
    sim.set_clock(at)
    h.ingest(sim.url, data_dir, at)
    build_warehouse(data_dir)
    report, stop = cwd / "reader.json", cwd / "stop"
    reader = h.start_reader({"data_dir": str(data_dir), "stop": str(stop), "report": str(report)})
    builds = 0
    for i in range(20):
        if i % 5 == 4:  # new snapshots now and then, so builds differ
            at += timedelta(hours=1)
            sim.set_clock(at)
            h.ingest(sim.url, data_dir, at)
        build_warehouse(data_dir)
        builds += 1
    stop.touch()
    reader.join(60)
    seen = json.loads(report.read_text())
    record(
        "reader during builds",
        injected=builds,
        survived=builds,
        reader_errors=seen["errors"],
        reader_rounds=seen["rounds"],
    )
    assert seen["errors"] == 0, seen["messages"]
    assert seen["rounds"] > 20


EXAMPLE_INSTANCE = Path(__file__).resolve().parents[1] / "deploy" / "dagster.local.yaml"


def test_the_example_instance_limits_runs_to_one_per_partition():
    limits = yaml.safe_load(EXAMPLE_INSTANCE.read_text())["concurrency"]["runs"]
    assert {
        "key": "dagster/partition",
        "value": {"applyLimitPerUniqueValue": True},
        "limit": 1,
    } in (limits["tag_concurrency_limits"])


@pytest.mark.slow
def test_the_example_instance_loads_with_those_limits(tmp_path):
    """The documented dagster.yaml is a valid instance config that Dagster reads as intended."""
    import shutil

    import dagster as dg

    shutil.copy(EXAMPLE_INSTANCE, tmp_path / "dagster.yaml")
    instance = dg.DagsterInstance.from_config(str(tmp_path))
    try:
        queue = instance.get_concurrency_config().run_queue_config
        assert queue.tag_concurrency_limits == [
            {"key": "dagster/partition", "value": {"applyLimitPerUniqueValue": True}, "limit": 1}
        ]
        assert instance.get_concurrency_config().pool_config.default_pool_limit == 1
    finally:
        instance.dispose()
