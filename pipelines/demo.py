"""`volcap demo`: simulated days of hourly snapshots through the real pipeline, then build and report.

The fleet simulator is deterministic from its seed and the instant asked for, so each worker
process serves its own copy of the same fleet and takes every other simulated day; all runs are
recorded in the one Dagster instance at $DAGSTER_HOME, so `make dev` shows the history.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import queue
import secrets
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from rich.console import Console, JustifyMethod
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from pipelines import publish

#: The demo's record of what it wrote in a data dir: every file with its size and mtime. A later
#: demo deletes exactly those files, and refuses when anything else is there or one changed.
MARKER = ".volcap-demo"
#: Left alone in any data dir: the repository's placeholder.
IGNORED = (".gitkeep",)
#: Snapshots are taken this far into each hour, like the schedule's tick.
TICK_OFFSET = timedelta(minutes=5)


class DemoError(RuntimeError):
    """The demo cannot run or a step failed; the message says why."""


@dataclass(frozen=True)
class _Job:
    worker: int
    days: tuple[int, ...]
    start: datetime
    volumes: int
    seed: int
    token: str
    data_dir: Path
    dagster_home: Path


#: The demo's own instance: telemetry off (volcap sends nothing but to the API), and no compute
#: log capture — Dagster's local capture spawns a `tail` process per step, the largest cost of a
#: 720-run demo after storage (measured: 0.56 → 0.36 s per run with the instance on tmpfs).
DEMO_INSTANCE_YAML = """\
telemetry:
  enabled: false
compute_logs:
  module: dagster._core.storage.noop_compute_log_manager
  class: NoOpComputeLogManager
"""


@contextlib.contextmanager
def _fast_instance_home(dagster_home: Path, own: bool) -> Iterator[Path]:
    """Run against a copy of the demo's instance on tmpfs, then move it back.

    SQLite storage syncs every event to disk; 720 short runs spend most of their time there.
    Only the demo's own instance is moved (a user's DAGSTER_HOME is used in place).
    """
    shm = Path("/dev/shm")
    if not own or not shm.is_dir():
        yield dagster_home
        return
    work = Path(tempfile.mkdtemp(prefix="volcap-demo-", dir=shm))
    try:
        shutil.copytree(dagster_home, work, dirs_exist_ok=True)
        yield work
        for child in dagster_home.iterdir():
            shutil.rmtree(child) if child.is_dir() else child.unlink()
        shutil.copytree(work, dagster_home, dirs_exist_ok=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _worker(job: _Job, events: Any) -> None:
    """Serve the fleet on loopback and snapshot every hour of this worker's days."""
    try:
        import dagster as dg

        from pipelines.resources import local_resources
        from pipelines.runner import run_snapshot
        from simulator import SimulatorServer

        with SimulatorServer(
            volumes=job.volumes, seed=job.seed, token=job.token, start=job.start
        ) as sim:
            resources = local_resources(job.data_dir, api_url=sim.url, api_token=job.token)
            with dg.DagsterInstance.from_config(str(job.dagster_home)) as instance:
                for day in job.days:
                    rows = 0
                    for hour in range(24):
                        at = job.start + timedelta(days=day, hours=hour) + TICK_OFFSET
                        sim.set_clock(at)
                        rows = run_snapshot(at, dagster_instance=instance, resources=resources).rows
                    events.put(("day", job.worker, day, rows))
        events.put(("done", job.worker, None, None))
    except BaseException as exc:
        from pipelines.redaction import redact

        message = " ".join((str(exc).strip() or type(exc).__name__).split())
        events.put(("error", job.worker, None, redact(message)))


def _inventory(data_dir: Path, dagster_home: Path) -> dict[str, list[int]]:
    """Every file under the data dir (path → [size, mtime_ns]), the marker and the Dagster
    instance apart: the instance is shared with `make dev` and real runs, so the demo never
    deletes it (its runs are history, not data)."""
    home = dagster_home.resolve()
    files: dict[str, list[int]] = {}
    for root, dirs, names in os.walk(data_dir):
        here = Path(root)
        dirs[:] = [d for d in dirs if (here / d).resolve() != home]
        for name in names:
            path = here / name
            relative = path.relative_to(data_dir).as_posix()
            if relative in (MARKER, *IGNORED):
                continue
            stat = path.lstat()
            files[relative] = [stat.st_size, stat.st_mtime_ns]
    return files


def _write_marker(data_dir: Path, record: dict[str, Any]) -> None:
    publish.write_text(data_dir / MARKER, json.dumps(record, sort_keys=True))


def _owned(data_dir: Path) -> dict[str, list[int]]:
    """The files a previous demo recorded as its own (none without a marker)."""
    marker = data_dir / MARKER
    if not marker.exists():
        return {}
    try:
        record = json.loads(marker.read_text())
        files = record["files"]
    except (OSError, ValueError, KeyError, TypeError):
        raise DemoError(
            f"{marker} does not record what a previous demo wrote (it did not finish, or the "
            "file is not the demo's); the demo deletes only its own output: point "
            "VOLCAP_DATA_DIR at an empty directory, or clear this one yourself (make clean)"
        ) from None
    return {str(k): list(v) for k, v in files.items()}


def _prepare(data_dir: Path, dagster_home: Path) -> None:
    """Delete a previous demo's output, file by file; refuse, deleting nothing, when the data
    dir holds any file the demo did not write or that changed since (a real snapshot's raw
    landing cannot be fetched again)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    owned = _owned(data_dir)
    present = _inventory(data_dir, dagster_home)
    foreign = sorted(path for path, stat in present.items() if owned.get(path) != stat)
    if foreign:
        raise DemoError(
            f"{data_dir} holds {len(foreign)} file(s) not written by a demo or changed since "
            f"(first: {foreign[0]}); the demo deletes only its own output: point "
            "VOLCAP_DATA_DIR at an empty directory, or clear this one yourself (make clean)"
        )
    for path in present:
        (data_dir / path).unlink()
    home = dagster_home.resolve()
    for root, dirs, _ in os.walk(data_dir, topdown=False):
        for name in dirs:
            folder = Path(root) / name
            if folder.resolve() != home and not folder.is_symlink():
                with contextlib.suppress(OSError):  # not empty: kept
                    folder.rmdir()
    dagster_home.mkdir(parents=True, exist_ok=True)
    if not (dagster_home / "dagster.yaml").exists():
        (dagster_home / "dagster.yaml").write_text(DEMO_INSTANCE_YAML)
    _write_marker(data_dir, {"state": "running"})


def _seal(data_dir: Path, dagster_home: Path) -> None:
    """Record every file the demo wrote, whether it finished or failed part-way."""
    _write_marker(data_dir, {"state": "done", "files": _inventory(data_dir, dagster_home)})


def _snapshot_days(
    days: int,
    volumes: int,
    seed: int,
    start: datetime,
    workers: int,
    progress: Progress,
    data_dir: Path,
    dagster_home: Path,
) -> None:
    token = secrets.token_urlsafe(24)
    workers = max(1, min(workers, days))
    import dagster as dg

    # Create the instance's SQLite databases once, here: workers that start on an empty
    # instance race to stamp its schema (alembic then sees two heads).
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        instance.get_runs_count()
        instance.get_asset_keys()
        instance.all_instigator_state()
    jobs = [
        _Job(w, tuple(range(w, days, workers)), start, volumes, seed, token, data_dir, dagster_home)
        for w in range(workers)
    ]
    task = progress.add_task("simulated days", total=days)
    if workers == 1:
        local: queue.SimpleQueue[tuple[Any, ...]] = queue.SimpleQueue()
        _worker(jobs[0], local)
        while not local.empty():
            kind, _, _, detail = local.get()
            if kind == "error":
                raise DemoError(f"snapshot failed: {detail}")
            if kind == "day":
                progress.advance(task)
        return
    context = multiprocessing.get_context("spawn")
    events = context.Queue()
    processes = [context.Process(target=_worker, args=(job, events), daemon=True) for job in jobs]
    for process in processes:
        process.start()
    try:
        running = len(processes)
        while running:
            try:
                kind, worker, _, detail = events.get(timeout=1.0)
            except queue.Empty:
                dead = [p for p in processes if p.exitcode not in (None, 0)]
                if dead:
                    raise DemoError(
                        f"a snapshot worker exited with code {dead[0].exitcode}"
                    ) from None
                continue
            if kind == "day":
                progress.advance(task)
            elif kind == "done":
                running -= 1
            else:
                raise DemoError(f"snapshot failed in worker {worker}: {detail}")
    finally:
        # A finished worker still flushes its queue and disposes its instance: let it exit by
        # itself; only a worker left behind by a failure is stopped.
        for process in processes:
            process.join(timeout=30)
            if process.is_alive():
                process.terminate()
                process.join()


def _days(value: float | None) -> str:
    """Days as a bare number (the column says "days"), so a row fits 80 columns."""
    if value is None:
        return "—"
    return f"{value:.1f}" if value < 100 else f"{value:,.0f}"


def _risk_table(rows: list[dict[str, Any]]) -> Table:
    """The next volumes to run out, in volume_risk's risk_rank: whole ids and sizes, no cell
    wrapped, within 80 columns (the name is in the report)."""
    from rich import box

    from pipelines.report import human_amount, percent

    table = Table(
        title="Next to run out (volume_risk)",
        title_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
    )
    columns: tuple[tuple[str, JustifyMethod], ...] = (
        ("volume", "left"),
        ("fills", "left"),
        ("used", "right"),
        ("quota", "right"),
        ("days", "right"),
        ("80% (days)", "right"),
        ("risk", "left"),
    )
    for column, justify in columns:
        table.add_column(column, justify=justify, no_wrap=True)
    for r in rows:
        resource = r["binding_resource"]
        low, high = r["days_to_full_low"], r["days_to_full_high"]
        style = "bold red" if r["risk"] == "critical" else "yellow"
        table.add_row(
            r["volume_id"],
            resource,
            percent(r["utilization"]),
            "unlimited" if r["quota"] is None else human_amount(resource, r["quota"]),
            _days(r["days_to_full"]),
            f"{_days(low)}–{_days(high) if high is not None else '…'}",
            f"[{style}]{r['risk']}[/]",
        )
    return table


def run_demo(
    days: int = 30,
    volumes: int = 2000,
    seed: int = 7,
    *,
    workers: int | None = None,
    console: Console | None = None,
    data_dir: str | None = None,
    dagster_home: str | None = None,
) -> str:
    """Run the demo and print its summary; returns the closing line (with the duration).

    `data_dir` and `dagster_home` default to the configured ones (`VOLCAP_DATA_DIR`,
    `DAGSTER_HOME`); the runs get them, and the simulator's URL and key, as arguments."""
    from pipelines import config

    started = time.monotonic()
    if days < 1 or volumes < 1:
        raise DemoError("--days and --volumes must be at least 1")
    console = console or Console()
    configured = config.data_dir() if data_dir is None else data_dir
    if "://" in configured:
        raise DemoError(
            f"the demo writes {days * 24} snapshots to a local data dir: unset VOLCAP_DATA_DIR or "
            "point it at a local directory (object storage is for real deployments)"
        )
    data = Path(configured).expanduser().resolve()
    home = Path(
        (config.dagster_home() if dagster_home is None else dagster_home) or data / "dagster_home"
    ).resolve()
    _prepare(data, home)
    own_home = home == (data / "dagster_home").resolve()
    try:
        with _fast_instance_home(home, own_home) as work_home:
            return _run(days, volumes, seed, workers, console, data, home, work_home, started)
    finally:
        _seal(data, home)


def _run(
    days: int,
    volumes: int,
    seed: int,
    workers: int | None,
    console: Console,
    data_dir: Path,
    dagster_home: Path,
    work_home: Path,
    started: float,
) -> str:
    from pipelines.report import human_bytes

    # The last simulated hour is the one that just ended, so the data is fresh in `make dev`.
    end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    start = end - timedelta(days=days)
    workers = workers or min(2, os.cpu_count() or 1)
    console.print(
        f"[bold]volcap demo[/]: {volumes:,} simulated volumes (seed {seed}), {days} days of hourly "
        f"snapshots from {start:%Y-%m-%d %H:%M} UTC, {workers} worker(s)"
    )
    with Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    ) as progress:
        _snapshot_days(days, volumes, seed, start, workers, progress, data_dir, work_home)
    snapshot_seconds = time.monotonic() - started

    import dagster as dg

    from pipelines import queries
    from pipelines.receipts import accuracy, one_line
    from pipelines.resources import local_resources
    from pipelines.runner import run_build, run_report
    from pipelines.warehouse import connect_published

    instance = dg.DagsterInstance.from_config(str(work_home))
    resources = local_resources(data_dir)
    step = time.monotonic()
    built = run_build(dagster_instance=instance, resources=resources)
    build_seconds = time.monotonic() - step
    report_path = run_report(dagster_instance=instance, resources=resources).path
    with connect_published(data_dir) as con:
        # the report's own queries (sql/report/), so the summary shows what the report shows
        rows = queries.rows(con, queries.REPORT, "at_risk", limit=10)
        counts = {
            (r["counted"], r["value"]): r["volumes"]
            for r in queries.rows(con, queries.REPORT, "risk_counts")
        }
        fleet_days = queries.rows(con, queries.REPORT, "fleet_days")
        growth = queries.rows(con, queries.REPORT, "fleet_growth")
        totals = queries.one(con, queries.REPORT, "warehouse_totals")
        receipts = one_line(accuracy(con))
    full = counts.get(("state", "full"), 0)
    at_mount_limit = counts.get(("mounts", "at_limit"), 0)
    latest = fleet_days[-1] if fleet_days else {}
    count, used = latest.get("volumes") or 0, latest.get("used_bytes")
    quota, utilization = latest.get("bounded_quota_bytes"), latest.get("bounded_utilization")
    first_used = fleet_days[0]["used_bytes"] if fleet_days else None
    growth_7d = growth[0]["bytes_growth_per_day_7d"] if growth else None
    snapshot_rows, events = totals["snapshot_rows"], totals["quota_events"]
    total_runs = instance.get_runs_count()

    console.print(_risk_table(rows))
    console.print(
        f"[bold]Already full[/]: {full:,} volumes at or over a byte or file quota. "
        f"[bold]Mount pressure[/]: {at_mount_limit:,} at their mount limit (not a capacity "
        "risk). Both listed in the report."
    )
    console.print(
        f"[bold]Fleet[/]: {count:,} volumes, {human_bytes(used)} used of {human_bytes(quota)} "
        f"bounded quota ({(utilization or 0):.0%}); grew {human_bytes((used or 0) - (first_used or 0))} "
        f"over {days} days, {human_bytes(growth_7d)}/day over the last 7; "
        f"{built.critical} critical, {built.warning} warning; {events:,} quota changes."
    )
    console.print(f"[bold]Receipts[/]: {receipts} (table: forecast_accuracy)")
    console.print(
        f"[bold]Where things are[/]\n"
        f"  report     {report_path}\n"
        f"  warehouse  {data_dir / 'warehouse.duckdb'}  ({snapshot_rows:,} snapshot rows; Parquet marts in {data_dir / 'marts'})\n"
        f"  lake       {data_dir / 'lake'}\n"
        f"  dagster    {dagster_home}  ({total_runs} runs recorded)\n"
        f"[bold]Next[/]\n"
        f"  make dev   the Dagster UI on http://127.0.0.1:3000 with these runs, assets and checks\n"
        f"  make sql   the warehouse read-only in the DuckDB CLI (queries: README, 'Querying and BI')"
    )
    total = time.monotonic() - started
    return (
        f"demo finished in {total:.0f}s (snapshots {snapshot_seconds:.0f}s for {days * 24} runs, "
        f"build {build_seconds:.1f}s)"
    )
