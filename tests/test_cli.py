"""`volcap` as a user runs it: a subprocess against the simulator over loopback."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from datetime import timedelta
from pathlib import Path

import dagster as dg
import pytest

from simulator import DEFAULT_START

TOKEN = "canary-cli-0d93e1"


def volcap(
    *args: str, env: dict[str, str], timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pipelines.cli", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=Path(__file__).parent.parent,
    )


@pytest.fixture
def world(simulator, tmp_path):
    sim = simulator(volumes=150, seed=3, token=TOKEN)
    home = tmp_path / "dagster_home"
    home.mkdir()
    env = {
        "VOLCAP_API_URL": sim.url,
        "VOLCAP_API_TOKEN": TOKEN,
        "VOLCAP_DATA_DIR": str(tmp_path / "data"),
        "DAGSTER_HOME": str(home),
    }
    return sim, env, tmp_path / "data", home


def lake_tree(data_dir: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(data_dir)): p.read_bytes() for p in (data_dir / "lake").rglob("*.parquet")
    }


def test_ingest_publishes_one_partition_and_a_rerun_changes_nothing(world):
    sim, env, data_dir, home = world
    at = DEFAULT_START + timedelta(days=2, hours=4, minutes=10)
    sim.set_clock(at)
    first = volcap("ingest", "--at", at.isoformat(), env=env)
    assert first.returncode == 0, first.stderr
    assert first.stderr == ""
    assert first.stdout.count("\n") == 1
    assert "ingested" in first.stdout and "2025-01-08-04:00" in first.stdout
    before = lake_tree(data_dir)
    assert list(before) == ["lake/volume_snapshots/snapshot_date=2025-01-08/20250108T0400Z.parquet"]
    second = volcap("ingest", "--at", at.isoformat(), env=env)
    assert second.returncode == 0, second.stderr
    assert lake_tree(data_dir) == before
    from dagster._core.instance.ref import InstanceRef

    with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home))) as instance:
        runs = instance.get_runs()
    assert len(runs) == 2
    assert all(run.tags.get("dagster/partition") == "2025-01-08-04:00" for run in runs)


def test_ingest_failure_is_one_line_and_never_shows_the_key(world):
    sim, env, data_dir, _ = world
    at = DEFAULT_START + timedelta(hours=1, minutes=5)
    sim.set_clock(at)
    result = volcap(
        "ingest", "--at", at.isoformat(), env={**env, "VOLCAP_API_TOKEN": TOKEN + "-wrong"}
    )
    assert result.returncode != 0
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "401" in lines[0]
    assert TOKEN not in result.stderr
    assert not (data_dir / "lake").exists() or not any((data_dir / "lake").rglob("*.parquet"))


def test_ingest_of_a_past_partition_explains_that_the_api_cannot_be_backfilled(world):
    sim, env, _, _ = world
    sim.set_clock(DEFAULT_START + timedelta(days=1, minutes=5))
    result = volcap("ingest", "--at", DEFAULT_START.isoformat(), env=env)
    assert result.returncode != 0
    assert "only serves the present" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_build_succeeds_while_a_reader_holds_the_warehouse(world, tmp_path):
    sim, env, data_dir, _ = world
    for hour in range(3):
        at = DEFAULT_START + timedelta(days=2, hours=hour, minutes=5)
        sim.set_clock(at)
        assert volcap("ingest", "--at", at.isoformat(), env=env).returncode == 0
    first = volcap("build", env=env)
    assert first.returncode == 0, first.stderr
    assert first.stdout.startswith("built ") and "critical" in first.stdout
    # `make sql` opens it with the DuckDB CLI from PyPI, which lags the Python package's format.
    cli = Path(sys.executable).parent / "duckdb"
    shell = subprocess.run(
        [
            str(cli),
            "-readonly",
            str(data_dir / "warehouse.duckdb"),
            "-c",
            "select count(*) from volume_risk",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert shell.returncode == 0, shell.stderr
    assert "150" in shell.stdout or "count" in shell.stdout
    reader_script = textwrap.dedent(
        """
        import duckdb, sys, time
        errors = reads = 0
        stop = time.monotonic() + 600
        con = duckdb.connect(sys.argv[1], read_only=True)  # held open throughout
        print("ready", flush=True)
        while time.monotonic() < stop:
            try:
                con.sql("select count(*) from volume_risk").fetchall()
                fresh = duckdb.connect(sys.argv[1], read_only=True)
                fresh.sql("select count(*) from quota_forecast").fetchall()
                fresh.close()
                reads += 1
            except Exception as exc:
                errors += 1
                print("ERR", exc, flush=True)
            if sys.stdin in __import__("select").select([sys.stdin], [], [], 0)[0]:
                break
        print("reads", reads, "errors", errors, flush=True)
        """
    )
    reader = subprocess.Popen(
        [sys.executable, "-c", reader_script, str(data_dir / "warehouse.duckdb")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert reader.stdout is not None
    assert reader.stdout.readline().strip() == "ready"
    at = DEFAULT_START + timedelta(days=2, hours=3, minutes=5)
    sim.set_clock(at)
    ingest = volcap("ingest", "--at", at.isoformat(), env=env)
    build = volcap("build", env=env)
    out, _ = reader.communicate("stop\n", timeout=60)
    assert ingest.returncode == 0, ingest.stderr
    assert build.returncode == 0, build.stderr
    assert "errors 0" in out, out
    assert "ERR" not in out


def test_help_lists_every_command():
    result = volcap("--help", env={})
    assert result.returncode == 0
    for command in ("ingest", "build", "demo", "simulate", "report"):
        assert command in result.stdout


def test_make_help_fits_79_columns():
    result = subprocess.run(
        ["make", "--no-print-directory", "help"],
        cwd=Path(__file__).parent.parent,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert any("make dev" in line for line in lines)
    assert max(len(line) for line in lines) <= 79, result.stdout


def test_compact_rewrites_closed_days_in_one_line_and_a_rerun_has_nothing_to_do(tmp_path):
    from tests.lakegen import Volume, snapshots, write_lake

    data_dir = tmp_path / "data"
    write_lake(data_dir, snapshots([Volume("a"), Volume("b")], hours=48))  # days closed by now
    env = {"VOLCAP_DATA_DIR": str(data_dir)}
    before = sorted(lake_tree(data_dir))
    first = volcap("compact", env=env)
    assert first.returncode == 0, first.stderr
    assert first.stderr == "" and first.stdout.count("\n") == 1
    assert first.stdout.startswith("compacted 3 day(s)"), first.stdout
    after = sorted(lake_tree(data_dir))
    assert len(before) == 48 and [Path(p).name for p in after] == [
        "day-2026-02-28.parquet",
        "day-2026-03-01.parquet",
        "day-2026-03-02.parquet",
    ]
    second = volcap("compact", env=env)
    assert second.returncode == 0, second.stderr
    assert second.stdout.startswith("nothing to compact")
    assert sorted(lake_tree(data_dir)) == after


def test_compact_checks_the_configuration_first():
    result = volcap("compact", env={"VOLCAP_CADENCE_MINUTES": "hourly"}, timeout=30)
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1
    assert "VOLCAP_CADENCE_MINUTES='hourly'" in result.stderr


@pytest.mark.parametrize(
    ("command", "defaults"),
    [
        (["demo", "--help"], ["(default: 30)", "(default: 2000)", "(default: 7)"]),
        (["simulate", "--help"], ["(default: 8080)", "(default: 2000)", "(default: 0)"]),
    ],
    ids=["demo", "simulate"],
)
def test_help_shows_the_defaults(command, defaults):
    result = volcap(*command, env={}, timeout=30)
    assert result.returncode == 0, result.stderr
    text = " ".join(result.stdout.split())
    for default in defaults:
        assert default in text
