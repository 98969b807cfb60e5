"""Writer processes to kill, and an auditor that says what a crash left behind.

Children are forked from a forkserver that has already imported the pipeline, so a kill costs
milliseconds of start-up rather than seconds of imports, and the parent keeps its own threads
(the simulator) out of the fork.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import random
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pyarrow.parquet as pq

from pipelines import lake
from pipelines.ingest import Window, land_raw, publish_lake, replay
from pipelines.lake import DataDir, partition_slug
from pipelines.resources import VolumeApi, resolve_layout
from pipelines.warehouse import build_warehouse

#: The key every reliability test uses; it must appear nowhere it could leak to.
CANARY = "canary-7f3a9d1e5b2c-volcap"


def hour_window(at: datetime) -> Window:
    start = at.replace(minute=0, second=0, microsecond=0)
    return Window(start, start + timedelta(hours=1))


def api(url: str, **kw: Any) -> VolumeApi:
    kw.setdefault("backoff_base", 0.01)
    kw.setdefault("max_attempts", 2)
    return VolumeApi(base_url=url, token=CANARY, **kw)


def ingest(url: str, data_dir: Path | str, at: datetime, **land: Any) -> None:
    """One snapshot, raw landing then lake publishing, as the two assets do it (`data_dir` may
    be an object-store URL, as `VOLCAP_DATA_DIR` may)."""
    data = resolve_layout(str(data_dir))
    window = hour_window(at)
    land_raw(api(url), data, window, **land)
    publish_lake(data, window.start)


# -- the child ------------------------------------------------------------------------------


def _die_at_replace(k: int) -> None:
    """SIGKILL this process just before its k-th rename into place (1-based)."""
    real = os.replace
    calls = 0

    def replace(src: Any, dst: Any) -> None:
        nonlocal calls
        calls += 1
        if calls == k:
            os.kill(os.getpid(), signal.SIGKILL)
        real(src, dst)

    os.replace = replace  # type: ignore[assignment]  # only ever in a throwaway child


def writer(job: dict[str, Any]) -> None:
    """Child entry point: ingest and/or build, optionally dying at a rename."""
    os.chdir(job["cwd"])
    os.environ["TMPDIR"] = job["cwd"]
    os.environ.update(job.get("env") or {})
    if job.get("die_at_replace"):
        _die_at_replace(job["die_at_replace"])
    if job["kind"] == "ingest":  # the data dir may be an object-store URL
        ingest(job["url"], job["data_dir"], datetime.fromisoformat(job["at"]))
        return
    data_dir = Path(job["data_dir"])
    if job["kind"] == "both":
        ingest(job["url"], data_dir, datetime.fromisoformat(job["at"]))
    if job["kind"] in ("build", "both"):
        build_warehouse(data_dir, lock_timeout=30)


_CTX: Any = None


def context() -> Any:
    global _CTX
    if _CTX is None:
        _CTX = multiprocessing.get_context("forkserver")
        _CTX.set_forkserver_preload(["tests.reliability.harness"])
    return _CTX


def start(job: dict[str, Any]) -> Any:
    proc = context().Process(target=writer, args=(job,), daemon=True)
    proc.start()
    return proc


def run_to_end(job: dict[str, Any], timeout: float = 120) -> int:
    proc = start(job)
    proc.join(timeout)
    if proc.is_alive():
        os.kill(proc.pid, signal.SIGKILL)
        proc.join()
    return proc.exitcode


def kill_after(job: dict[str, Any], delay: float) -> int:
    """Start a writer, SIGKILL it after `delay` seconds (if still running); its exit code."""
    proc = start(job)
    proc.join(delay)
    if proc.is_alive():
        os.kill(proc.pid, signal.SIGKILL)
    proc.join(60)
    return proc.exitcode


# -- the auditor ----------------------------------------------------------------------------


@dataclass
class Audit:
    files: int = 0
    corrupt: list[str] = field(default_factory=list)
    half_published: list[str] = field(default_factory=list)
    duplicate_rows: int = 0
    world_accessible: list[str] = field(default_factory=list)
    outside: list[str] = field(default_factory=list)
    leftovers: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not (self.corrupt or self.half_published or self.duplicate_rows or self.outside)


_TRANSIENT = (".staging", ".locks")


def _is_leftover(rel: Path) -> bool:
    name = rel.name
    return rel.parts[0] == ".staging" or ".building" in name or name.endswith(".tmp")


def audit(data_dir: Path, previous_lake: dict[str, pl.DataFrame] | None = None) -> Audit:
    """Everything under `data_dir` readable; every raw pair consistent; every lake partition
    either what it was before (`previous_lake`, by partition slug) or the normalization of
    its committed raw body; no duplicate rows; nothing pointing outside the dir."""
    root = Path(data_dir).resolve()
    data = DataDir.at(root)
    result = Audit()
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if path.is_symlink() or not path.resolve().is_relative_to(root):
            result.outside.append(str(rel))
            continue
        if path.is_dir():
            continue
        result.files += 1
        if _is_leftover(rel):
            result.leftovers.append(str(rel))
            continue
        if rel.parts[0] == ".locks" or path.name.endswith(".lock"):
            continue
        try:
            _read(path)
        except Exception as exc:
            result.corrupt.append(f"{rel}: {type(exc).__name__}: {str(exc)[:120]}")
    for sidecar_path in sorted(data.raw.glob("snapshot_date=*/*.meta.json")):
        slug = sidecar_path.name.split(".", 1)[0]
        at = datetime.strptime(slug, "%Y%m%dT%H%MZ").replace(tzinfo=UTC)
        try:
            sidecar = lake.read_sidecar(sidecar_path)
            body = data.raw_body(at)
            if lake.file_sha256(body) != sidecar["raw_sha256"]:
                raise ValueError("compressed body does not match the sidecar")
        except Exception as exc:
            result.half_published.append(f"raw {slug}: {type(exc).__name__}: {exc}")
            continue
        lake_path = data.lake_file(at)
        if not lake_path.exists():
            continue
        try:
            current = pl.read_parquet(lake_path)
        except Exception:
            continue  # already counted as corrupt
        result.duplicate_rows += current.height - current["volume_id"].n_unique()
        expected = replay(data, at).frame
        before = (previous_lake or {}).get(slug)
        if not (current.equals(expected) or (before is not None and current.equals(before))):
            result.half_published.append(f"lake {slug}: neither the previous file nor its raw")
    for lake_path in data.lake.glob("snapshot_date=*/*.parquet"):
        slug = lake_path.stem
        if slug.startswith("day-"):
            continue  # a compacted day (pipelines/compaction.py) has no raw pair of its own
        if not (data.raw / lake_path.parent.name / f"{slug}.meta.json").exists():
            result.half_published.append(f"lake {slug}: no raw snapshot committed")
    for path in root.rglob("*"):
        rel = path.relative_to(root)
        if rel.parts[0] in _TRANSIENT or path.name.endswith(".lock"):
            continue
        if path.stat().st_mode & 0o007:
            result.world_accessible.append(f"{rel} {oct(path.stat().st_mode & 0o777)}")
    return result


def _read(path: Path) -> None:
    name = path.name
    if name.endswith(".parquet"):
        pq.read_table(path)
    elif name.endswith(".json"):
        json.loads(path.read_text())
    elif name.endswith(".json.zst"):
        import pyarrow as pa

        with pa.input_stream(str(path), compression="zstd") as fin:
            while fin.read(8 << 20):
                pass
    elif name.endswith(".duckdb"):
        con = duckdb.connect(str(path), read_only=True)
        try:
            con.execute("select count(*) from volume_snapshots").fetchone()
        finally:
            con.close()
    elif name.endswith(".wal"):
        raise ValueError("a write-ahead log left beside a published database")


def lake_state(data_dir: Path) -> dict[str, pl.DataFrame]:
    """The lake's partitions now, by slug (what an audit after a crash may fall back to)."""
    return {
        p.stem: pl.read_parquet(p)
        for p in DataDir.at(data_dir).lake.glob("snapshot_date=*/*.parquet")
    }


def files_in(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


@contextlib.contextmanager
def sandbox(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """(data dir, an empty working dir for children: anything appearing there escaped)."""
    data_dir, cwd = tmp_path / "data", tmp_path / "cwd"
    cwd.mkdir()
    yield data_dir, cwd


def scan_for(needle: str, *roots: Path) -> list[str]:
    """Every file (by name or content) under `roots` that contains `needle`."""
    hits = []
    raw = needle.encode()
    for root in roots:
        for path in Path(root).rglob("*"):
            if needle in path.name:
                hits.append(f"name: {path}")
            if path.is_file() and raw in path.read_bytes():
                hits.append(f"content: {path}")
    return hits


def partition_slug_of(at: datetime) -> str:
    return partition_slug(hour_window(at).start)


def jitter(rng: random.Random, span: float) -> float:
    return rng.uniform(0.0, span)


def now() -> float:
    return time.monotonic()


def reader(job: dict[str, Any]) -> None:
    """Child entry point: query the published warehouse until `stop` appears, holding one
    connection open throughout and opening a fresh one each round; counts go to `report`."""
    from pipelines.warehouse import connect_published

    data_dir, stop = Path(job["data_dir"]), Path(job["stop"])
    held = connect_published(data_dir)
    rounds = errors = 0
    messages: list[str] = []
    while not stop.exists():
        rounds += 1
        try:
            held.execute("select count(*), sum(used_bytes) from volume_snapshots").fetchone()
            fresh = connect_published(data_dir)
            try:
                fresh.execute("select count(*) from volume_risk").fetchone()
                fresh.execute("select count(*) from quota_forecast").fetchone()
            finally:
                fresh.close()
        except Exception as exc:
            errors += 1
            messages.append(f"{type(exc).__name__}: {exc}"[:200])
        time.sleep(0.01)
    held.close()
    Path(job["report"]).write_text(
        json.dumps({"rounds": rounds, "errors": errors, "messages": messages[:5]})
    )


def start_reader(job: dict[str, Any]) -> Any:
    proc = context().Process(target=reader, args=(job,), daemon=True)
    proc.start()
    return proc
