"""`volcap demo`: simulated days through the real Dagster jobs, a warehouse, a report and a summary."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest
from rich.console import Console

from pipelines import demo
from pipelines.warehouse import connect_published

DAYS = 2


@pytest.fixture
def dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    data, home = tmp_path / "data", tmp_path / "dagster_home"
    monkeypatch.setenv("VOLCAP_DATA_DIR", str(data))
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    for name in ("VOLCAP_API_URL", "VOLCAP_API_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    return data, home


def test_short_demo_records_runs_builds_and_prints_the_urgent_volumes(
    dirs: tuple[Path, Path],
) -> None:
    data, home = dirs
    out = io.StringIO()
    environment = dict(os.environ)
    line = demo.run_demo(
        days=DAYS, volumes=200, seed=7, workers=2, console=Console(file=out, width=80)
    )
    printed = out.getvalue()
    # the runs get the simulator's URL and key, the data dir and the instance as arguments
    assert dict(os.environ) == environment

    assert line.startswith("demo finished in ") and f"{DAYS * 24} runs" in line
    with connect_published(data) as con:
        urgent = [
            row[0]
            for row in con.execute(
                "select volume_id from volume_risk where risk <> 'ok' and state <> 'full' "
                "order by risk_rank limit 10"
            ).fetchall()
        ]
        at_mount_limit = {
            row[0]
            for row in con.execute(
                "select volume_id from volume_risk where mount_pressure >= 1"
            ).fetchall()
        }
        # the volumes at risk by their bytes or files (quota_forecast knows nothing of mounts)
        at_risk_by_capacity = {
            row[0]
            for row in con.execute(
                "select distinct volume_id from quota_forecast where risk <> 'ok'"
            ).fetchall()
        }
        snapshots = con.execute(
            "select count(distinct snapshot_at) from volume_snapshots"
        ).fetchone()
    assert snapshots == (DAYS * 24,)
    assert urgent and "Next to run out" in printed
    # at 80 columns: every listed volume's whole id on one line, in the report's order
    table = printed[printed.index("Next to run out") : printed.index("Already full")]
    listed = [line.split()[0] for line in table.splitlines() if line.strip().startswith("vol-")]
    assert listed == urgent
    assert max(len(line.rstrip()) for line in table.splitlines()) <= 80
    assert "…" not in table.replace("–…", "")  # only an open-ended interval is elided
    # nothing ranked for its mounts alone: a volume at its mount limit is listed only when its
    # bytes or files put it at risk
    assert at_mount_limit and "Mount pressure" in printed
    assert set(urgent) <= at_risk_by_capacity
    assert "Fleet" in printed and "make dev" in printed and "make sql" in printed
    # paths longer than the terminal are folded across lines
    assert str(data / "reports" / "capacity.html") in printed.replace("\n", "")
    assert (data / "reports" / "capacity.html").stat().st_size > 10_000

    with dg.DagsterInstance.from_config(str(home)) as instance:
        runs = instance.get_run_records()
        jobs = sorted({r.dagster_run.job_name for r in runs})
        succeeded = {r.dagster_run.status for r in runs}
        # the simulator's URL and key were handed over as a built resource, which Dagster does
        # not record (a configured one's values are kept in the run's job snapshot)
        snapshots = {
            dg.serialize_value(instance.get_job_snapshot(r.dagster_run.job_snapshot_id))
            for r in runs
            if r.dagster_run.job_snapshot_id
        }
    assert snapshots and not any("127.0.0.1" in snapshot for snapshot in snapshots)
    assert len(runs) == DAYS * 24 + 2  # every snapshot, one build, one report
    assert jobs == ["build_job", "report_job", "snapshot_job"]
    assert succeeded == {dg.DagsterRunStatus.SUCCESS}
    assert "VOLCAP_API_TOKEN" not in printed


def _files(data: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(data)): p.read_bytes()
        for p in data.rglob("*")
        if p.is_file() and "dagster_home" not in p.parts
    }


def test_demo_refuses_a_data_dir_it_did_not_create(dirs: tuple[Path, Path]) -> None:
    data, _ = dirs
    (data / "lake").mkdir(parents=True)
    (data / "lake" / "precious.parquet").write_bytes(b"PAR1")
    with pytest.raises(demo.DemoError, match="not written by a demo"):
        demo.run_demo(days=1, volumes=10, console=Console(file=io.StringIO()))
    assert (data / "lake" / "precious.parquet").read_bytes() == b"PAR1"


def test_a_second_demo_replaces_the_first_but_never_a_real_snapshot_taken_in_between(
    dirs: tuple[Path, Path], simulator
) -> None:
    """make demo; make clean (which once kept the marker); volcap ingest; volcap demo: the
    raw landing of a real snapshot cannot be fetched again, so the demo refuses."""
    data, _ = dirs
    quiet = Console(file=io.StringIO())
    demo.run_demo(days=1, volumes=20, workers=1, console=quiet)
    demo.run_demo(days=1, volumes=20, workers=1, console=quiet)  # its own output: replaced
    with connect_published(data) as con:
        assert con.execute(
            "select count(distinct snapshot_at) from volume_snapshots"
        ).fetchone() == (24,)

    sim = simulator(volumes=30, seed=5, token="real-key-1234")
    at = sim.clock.now()
    ingested = subprocess.run(
        [sys.executable, "-m", "pipelines.cli", "ingest", "--at", at.isoformat()],
        env={**os.environ, "VOLCAP_API_URL": sim.url, "VOLCAP_API_TOKEN": "real-key-1234"},
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert ingested.returncode == 0, ingested.stderr
    before = _files(data)
    assert any(path.startswith("raw/") for path in before)

    refused = subprocess.run(
        [sys.executable, "-m", "pipelines.cli", "demo", "--days", "1", "--volumes", "20"],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert refused.returncode == 1
    assert len(refused.stderr.strip().splitlines()) == 1
    assert "not written by a demo or changed since" in refused.stderr
    assert _files(data) == before


def test_a_demo_that_was_killed_part_way_leaves_a_marker_the_next_demo_will_not_trust(
    dirs: tuple[Path, Path],
) -> None:
    data, _ = dirs
    data.mkdir(parents=True)
    (data / demo.MARKER).write_text('{"state": "running"}')
    (data / "raw").mkdir()
    (data / "raw" / "body.json").write_text("[]")
    with pytest.raises(demo.DemoError, match="did not finish"):
        demo.run_demo(days=1, volumes=10, console=Console(file=io.StringIO()))
    assert (data / "raw" / "body.json").exists()
