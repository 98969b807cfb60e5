"""Dagster on PostgreSQL: deploy/dagster.yaml against a real server started by the test.

A throwaway PostgreSQL (Debian's `initdb`/`pg_ctl`) listens on a free loopback port with
password auth; DAGSTER_HOME holds a copy of `deploy/dagster.yaml`, configured only through
the environment. The CLI takes a snapshot and a schedule tick takes another, then both runs
are read back through the Dagster instance and straight from PostgreSQL's `runs` table.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from simulator import DEFAULT_START

REPO = Path(__file__).parent.parent
DEPLOY_YAML = REPO / "deploy" / "dagster.yaml"
TOKEN = "canary-postgres-5d1f08"
PG_PASSWORD = "volcap-test-pw"

psycopg2 = pytest.importorskip(
    "psycopg2", reason="the deploy group is not installed: uv sync --group deploy"
)
pytest.importorskip(
    "dagster_postgres", reason="the deploy group is not installed: uv sync --group deploy"
)


def _pg_bin() -> Path:
    """The newest PostgreSQL server binaries: Debian keeps them off PATH, per major version."""
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3])
    )
    if found:
        return Path(found[-1]).parent
    on_path = shutil.which("initdb")
    if on_path and shutil.which("pg_ctl"):
        return Path(on_path).parent
    pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) not found: apt-get install postgresql")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def postgres() -> Iterator[dict[str, str]]:
    """A PostgreSQL server on 127.0.0.1:<free port>; yields the DAGSTER_PG_* environment."""
    bin_dir = _pg_bin()
    run_as: dict[str, Any] = {}
    # initdb refuses to run as root: run the server as Debian's `postgres` user instead.
    if os.geteuid() == 0:
        try:
            user = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no `postgres` user to run the server as")
        run_as = {"user": user.pw_uid, "group": user.pw_gid}
    # Not tmp_path: pytest's base dir is private to the current user.
    root = Path(tempfile.mkdtemp(prefix="volcap-pg-"))
    data, pwfile, log = root / "data", root / "pw", root / "server.log"
    pwfile.write_text(PG_PASSWORD + "\n")
    if run_as:
        for path in (root, pwfile):
            os.chown(path, run_as["user"], run_as["group"])
    port = _free_port()

    def pg(*args: str) -> None:
        subprocess.run(args, check=True, capture_output=True, timeout=60, **run_as)

    try:
        pg(
            str(bin_dir / "initdb"), "-D", str(data), "-U", "volcap", "-E", "UTF8",
            "--auth=scram-sha-256", f"--pwfile={pwfile}", "--no-sync",
        )  # fmt: skip
        pg(
            str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(log), "-w", "-t", "30",
            "-o", f"-p {port} -c listen_addresses=127.0.0.1 -k {root} -c fsync=off",
            "start",
        )  # fmt: skip
    except subprocess.CalledProcessError as exc:
        detail = exc.stderr.decode(errors="replace") + (log.read_text() if log.exists() else "")
        shutil.rmtree(root, ignore_errors=True)
        raise RuntimeError(f"could not start PostgreSQL: {detail}") from exc
    try:
        yield {
            "DAGSTER_PG_HOST": "127.0.0.1",
            "DAGSTER_PG_PORT": str(port),
            "DAGSTER_PG_USER": "volcap",
            "DAGSTER_PG_PASSWORD": PG_PASSWORD,
            "DAGSTER_PG_DB": "postgres",
        }
    finally:
        subprocess.run(
            [str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
            capture_output=True, timeout=60, **run_as,
        )  # fmt: skip
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def deployment(postgres, simulator, tmp_path, monkeypatch):
    """DAGSTER_HOME with deploy/dagster.yaml and every variable it and volcap read."""
    sim = simulator(volumes=120, seed=4, token=TOKEN)
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(DEPLOY_YAML, home / "dagster.yaml")
    env = {
        **postgres,
        "DAGSTER_HOME": str(home),
        "VOLCAP_API_URL": sim.url,
        "VOLCAP_API_TOKEN": TOKEN,
        "VOLCAP_DATA_DIR": str(tmp_path / "data"),
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return sim, env


def _query(env: dict[str, str], sql: str) -> list[tuple[Any, ...]]:
    with (
        psycopg2.connect(
            host=env["DAGSTER_PG_HOST"],
            port=int(env["DAGSTER_PG_PORT"]),
            user=env["DAGSTER_PG_USER"],
            password=env["DAGSTER_PG_PASSWORD"],
            dbname=env["DAGSTER_PG_DB"],
        ) as con,
        con.cursor() as cur,
    ):
        cur.execute(sql)
        rows = cur.fetchall()
    con.close()
    return rows


def test_cli_and_a_schedule_tick_record_their_runs_in_postgres(deployment):
    sim, env = deployment
    from pipelines.definitions import build_definitions

    # 1. A person runs `volcap ingest`: the CLI opens the instance at $DAGSTER_HOME.
    first = DEFAULT_START + timedelta(days=1, hours=2, minutes=10)
    sim.set_clock(first)
    cli = subprocess.run(
        [sys.executable, "-m", "pipelines.cli", "ingest", "--at", first.isoformat()],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=180,
        cwd=REPO,
    )
    assert cli.returncode == 0, cli.stderr
    assert "2025-01-07-02:00" in cli.stdout

    # 2. The daemon's tick: evaluate the schedule at its cron instant, run what it requests.
    tick = DEFAULT_START + timedelta(days=1, hours=3, minutes=5)
    sim.set_clock(tick + timedelta(seconds=30))
    defs = build_definitions()  # after the env is set: resources resolve VOLCAP_* from it
    schedule = defs.resolve_schedule_def("snapshot_schedule")
    job = defs.resolve_job_def("snapshot_job")
    with dg.DagsterInstance.get() as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
        assert type(instance.schedule_storage).__name__ == "PostgresScheduleStorage"
        assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"
        queue = instance.get_concurrency_config().run_queue_config  # what the daemon applies
        assert queue is not None
        assert [
            (limit["key"], limit["value"], limit["limit"]) for limit in queue.tag_concurrency_limits
        ] == [("dagster/partition", {"applyLimitPerUniqueValue": True}, 1)]

        context = dg.build_schedule_context(
            instance=instance,
            scheduled_execution_time=tick,
            repository_def=defs.get_repository_def(),
        )
        requests = schedule.evaluate_tick(context).run_requests or []
        assert [r.partition_key for r in requests] == ["2025-01-07-03:00"]
        result = job.execute_in_process(
            partition_key=requests[0].partition_key,
            instance=instance,
            tags={**requests[0].tags, "dagster/schedule_name": schedule.name},
            raise_on_error=False,
        )
        assert result.success

        runs = sorted(instance.get_runs(), key=lambda r: r.tags["dagster/partition"])
        assert [(r.job_name, r.status, r.tags["dagster/partition"]) for r in runs] == [
            ("snapshot_job", dg.DagsterRunStatus.SUCCESS, "2025-01-07-02:00"),
            ("snapshot_job", dg.DagsterRunStatus.SUCCESS, "2025-01-07-03:00"),
        ]
        assert runs[1].tags["dagster/schedule_name"] == "snapshot_schedule"
        materialized = instance.get_latest_materialization_event(dg.AssetKey("volume_snapshots"))
        assert materialized is not None and materialized.run_id == runs[1].run_id

    # 3. The same runs, straight from PostgreSQL.
    assert _query(env, "select pipeline_name, status, partition from runs order by partition") == [
        ("snapshot_job", "SUCCESS", "2025-01-07-02:00"),
        ("snapshot_job", "SUCCESS", "2025-01-07-03:00"),
    ]
    assert _query(env, "select value from run_tags where key = 'dagster/schedule_name'") == [
        ("snapshot_schedule",)
    ]
    # The key is read at run time from the environment: never stored with a run or an event.
    leaks = f"%{TOKEN}%"
    assert _query(
        env,
        f"select (select count(*) from runs where run_body like '{leaks}')"
        f" + (select count(*) from event_logs where event like '{leaks}')",
    ) == [(0,)]
