"""Crash safety: writers SIGKILLed at random points and at every rename, and a full disk.

After every kill: every file under the data dir reads, every raw body matches its sidecar,
every lake partition is either what it was or the normalization of its committed raw body,
and the next run succeeds and sweeps what the dead writer left.
"""

from __future__ import annotations

import os
import random
import resource
import signal
import subprocess
import sys
from collections import Counter
from datetime import timedelta
from pathlib import Path

import polars as pl
import pytest

from pipelines import lake
from pipelines.lake import DataDir
from pipelines.warehouse import build_warehouse
from simulator import DEFAULT_START
from tests.reliability import harness as h
from tests.reliability.score import record

BASE = DEFAULT_START + timedelta(days=3)
#: Renames per cycle: raw body, raw sidecar (commit), lake file; warehouse swap, 9 mart exports.
INGEST_RENAMES = 3
BUILD_RENAMES = 10
PHASES = {
    ("ingest", 1): "raw body rename",
    ("ingest", 2): "raw sidecar commit",
    ("ingest", 3): "lake publish",
    ("build", 1): "warehouse swap",
}


def campaign(tmp_path: Path, simulator, kills: int, seed: int) -> dict[str, object]:
    """Kill `kills` writers, auditing after each kill and after each recovery run."""
    rng = random.Random(seed)
    data_dir, cwd = tmp_path / "data", tmp_path / "cwd"
    cwd.mkdir()
    sim = simulator(volumes=300, seed=seed, token=h.CANARY)
    partitions = [BASE, BASE + timedelta(hours=1)]
    for start in partitions:
        at = start + timedelta(minutes=2)
        sim.set_clock(at)
        h.ingest(sim.url, data_dir, at)
    build_warehouse(data_dir)
    timing = {}
    for kind in ("ingest", "build"):
        job = {
            "kind": kind,
            "url": sim.url,
            "at": (BASE + timedelta(minutes=2)).isoformat(),
            "data_dir": str(data_dir),
            "cwd": str(cwd),
        }
        sim.set_clock(BASE + timedelta(minutes=2))
        h.run_to_end(job)  # warm the forkserver
        started = h.now()
        assert h.run_to_end(job) == 0
        timing[kind] = h.now() - started

    killed, phases, problems, recoveries = 0, Counter[str](), [], 0
    for i in range(kills):
        kind = rng.choice(["ingest", "ingest", "build", "both"])
        start = partitions[i % len(partitions)]
        at = start + timedelta(minutes=3 + i % 50, seconds=rng.randrange(60))
        sim.set_clock(at)  # a later instant: a different body replaces the partition
        job = {
            "kind": kind,
            "url": sim.url,
            "at": at.isoformat(),
            "data_dir": str(data_dir),
            "cwd": str(cwd),
        }
        before = h.lake_state(data_dir)
        if rng.random() < 0.5:
            renames = {"ingest": INGEST_RENAMES, "build": BUILD_RENAMES}.get(
                kind, INGEST_RENAMES + BUILD_RENAMES
            )
            k = rng.randint(1, renames)
            first = "build" if kind == "build" or k > INGEST_RENAMES else "ingest"
            step = k - INGEST_RENAMES if kind == "both" and k > INGEST_RENAMES else k
            phase = PHASES.get((first, step), "marts export")
            code = h.run_to_end({**job, "die_at_replace": k})
        else:
            span = timing["ingest"] * (kind != "build") + timing["build"] * (kind != "ingest")
            delay = rng.uniform(0.0, span)
            phase = f"random instant in {kind}"
            code = h.kill_after(job, delay)
        if code == -signal.SIGKILL:
            killed += 1
            phases[phase] += 1
        found = h.audit(data_dir, before)
        if not found.clean:
            problems.append((i, phase, found))
        # The next run succeeds (whatever the dead writer left) and sweeps its leftovers.
        h.ingest(sim.url, data_dir, at)
        if kind != "ingest":  # only a build sweeps a killed build's leftovers
            build_warehouse(data_dir)
        recoveries += 1
        after = h.audit(data_dir)
        if not after.clean or after.leftovers:
            problems.append((i, f"after recovery from {phase}", after))

    final = h.audit(data_dir)
    data = DataDir.at(data_dir)
    rows_lost = 0
    for start in partitions:
        sidecar = lake.read_sidecar(data.raw_sidecar(start))
        validation = sidecar["validation"]
        published = pl.read_parquet(data.lake_file(start)).height
        rows_lost += int(validation["rows_in"]) - int(validation["rows_quarantined"]) - published
    return {
        "kills": killed,
        "attempts": kills,
        "phases": dict(phases),
        "problems": problems,
        "recoveries": recoveries,
        "rows_lost": rows_lost,
        "duplicate_rows": final.duplicate_rows,
        "corrupt_files": len(final.corrupt),
        "world_accessible": final.world_accessible,
        "files_outside": h.files_in(cwd) + final.outside,
    }


def _assert_and_record(result: dict[str, object], minimum_kills: int) -> None:
    record(
        "crash (SIGKILL)",
        injected=result["kills"],
        survived=result["kills"] if not result["problems"] else 0,
        rows_lost=result["rows_lost"],
        duplicate_rows=result["duplicate_rows"],
        corrupt_files=result["corrupt_files"],
        files_outside=len(result["files_outside"]),  # type: ignore[arg-type]
        detail=result["phases"],
    )
    assert result["problems"] == []
    assert result["kills"] >= minimum_kills
    assert result["rows_lost"] == 0
    assert result["duplicate_rows"] == 0
    assert result["corrupt_files"] == 0
    assert result["world_accessible"] == []
    assert result["files_outside"] == []


def test_writers_killed_at_random_points_leave_every_partition_old_or_new(tmp_path, simulator):
    result = campaign(tmp_path, simulator, kills=8, seed=1)
    _assert_and_record(result, minimum_kills=5)


@pytest.mark.slow
def test_sixty_kills_across_fetch_raw_lake_and_warehouse(tmp_path, simulator):
    result = campaign(tmp_path, simulator, kills=64, seed=2)
    _assert_and_record(result, minimum_kills=50)


@pytest.mark.parametrize(
    "renames",
    [
        pytest.param((1, 2, 3, 4), id="raw-commit-lake-and-swap"),
        pytest.param(
            tuple(range(1, INGEST_RENAMES + BUILD_RENAMES + 1)), id="all", marks=pytest.mark.slow
        ),
    ],
)
def test_every_rename_boundary_is_a_safe_place_to_die(tmp_path, simulator, renames):
    """Deterministic: a kill just before each rename of an ingest + build cycle."""
    data_dir, cwd = tmp_path / "data", tmp_path / "cwd"
    cwd.mkdir()
    sim = simulator(volumes=120, seed=3, token=h.CANARY)
    at = BASE + timedelta(minutes=1)
    sim.set_clock(at)
    h.ingest(sim.url, data_dir, at)
    build_warehouse(data_dir)
    killed = 0
    for k in renames:
        at += timedelta(minutes=1)
        sim.set_clock(at)
        before = h.lake_state(data_dir)
        job = {
            "kind": "both",
            "url": sim.url,
            "at": at.isoformat(),
            "data_dir": str(data_dir),
            "cwd": str(cwd),
            "die_at_replace": k,
        }
        assert h.run_to_end(job) == -signal.SIGKILL
        killed += 1
        found = h.audit(data_dir, before)
        assert found.clean, (k, found)
        h.ingest(sim.url, data_dir, at)
        build_warehouse(data_dir)
        assert h.audit(data_dir).leftovers == []
    record("crash at every rename", injected=killed, survived=killed)


# -- disk full ------------------------------------------------------------------------------


def _limit_file_size(limit: int):
    def preexec() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of death
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return preexec


def _tree(data_dir: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(data_dir)): p.read_bytes()
        for p in data_dir.rglob("*")
        if p.is_file() and ".locks" not in p.parts and ".staging" not in p.parts
    }


def test_a_full_disk_fails_the_cli_in_one_clear_line_and_keeps_the_previous_data(
    tmp_path, simulator
):
    sim = simulator(volumes=1500, seed=4, token=h.CANARY)
    at = BASE + timedelta(minutes=5)
    sim.set_clock(at)
    data_dir = tmp_path / "data"
    env = {
        **os.environ,
        "VOLCAP_API_URL": sim.url,
        "VOLCAP_API_TOKEN": h.CANARY,
        "VOLCAP_DATA_DIR": str(data_dir),
    }
    env.pop("DAGSTER_HOME", None)
    cmd = [sys.executable, "-m", "pipelines.cli", "ingest", "--at", at.isoformat()]
    h.ingest(sim.url, data_dir, at)
    before = _tree(data_dir)
    sim.set_clock(at + timedelta(minutes=10))  # a new body for the same partition
    body_bytes = sum(len(v) for k, v in before.items() if k.endswith(".json.zst"))
    full = subprocess.run(
        cmd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=_limit_file_size(max(4096, body_bytes // 4)),
    )
    assert full.returncode == 1
    lines = full.stderr.strip().splitlines()
    assert len(lines) == 1, full.stderr
    assert "volcap ingest: error:" in lines[0]
    assert "File too large" in lines[0] and "previous data is untouched" in lines[0]
    assert _tree(data_dir) == before
    assert h.audit(data_dir).clean
    assert h.CANARY not in full.stderr + full.stdout
    record("disk full (RLIMIT_FSIZE)", injected=1, survived=1, corrupt_files=0, rows_lost=0)
