"""Benchmark one snapshot, end to end: simulator over loopback → validated Parquet + raw landing.

Each variant runs in a fresh subprocess (so imports, page cache of the interpreter and peak RSS
are its own), against the same prerendered body served by the simulator in this process:

- `volcap`: `land_raw` + `publish_lake` called in process (wall time of those two calls;
  the import time is printed beside it);
- `cli`: the whole `volcap ingest` process (Dagster import and start-up included);
- `dlt`: the peer, a dlt `rest_api` source → filesystem destination as Parquet.

Peak RSS is each child's own high-water mark (VmHWM), polled from /proc. `--layouts` serves the
same fleet in each whitespace layout (compact `},{`, spaced `}, {`, pretty-printed) in turn.
Run: `uv run --group bench python -m bench.ingest --volumes 100000 1000000 --runs 3
--layouts compact,spaced,pretty`.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TOKEN = "bench-token"
ROOT = Path(__file__).resolve().parent.parent


# -- workers (run in a fresh interpreter) ------------------------------------------------------


def _worker_volcap(url: str, data_dir: Path, at: str) -> dict[str, float]:
    started = time.perf_counter()
    from datetime import datetime, timedelta

    from pipelines.ingest import Window, land_raw, publish_lake
    from pipelines.lake import DataDir
    from pipelines.resources import VolumeApi

    imported = time.perf_counter()
    instant = datetime.fromisoformat(at)
    start = instant.replace(minute=0, second=0, microsecond=0)
    window = Window(start, start + timedelta(hours=1))
    api = VolumeApi(base_url=url, token=TOKEN)
    data = DataDir.at(data_dir)
    cpu = time.process_time()
    t0 = time.perf_counter()
    landed = land_raw(api, data, window)
    t1 = time.perf_counter()
    published = publish_lake(data, window.start)
    t2 = time.perf_counter()
    return {
        # CPU seconds of the work, all threads: robust to a loaded machine, unlike wall time
        "cpu_s": time.process_time() - cpu,
        "import_s": imported - started,
        "land_raw_s": t1 - t0,
        "publish_lake_s": t2 - t1,
        "wall_s": t2 - t0,
        "rows": published.rows,
        "body_mb": landed.fetch.byte_count / 1e6,
        "validation_path": landed.normalized.validation_path,
    }


def _worker_phases(url: str, data_dir: Path, at: str) -> dict[str, float]:
    """The same work, one step at a time (no overlap), to say where the time goes."""
    from datetime import datetime

    from pipelines import lake
    from pipelines.normalize import normalize
    from pipelines.resources import VolumeApi

    data_dir.mkdir(parents=True, exist_ok=True)
    api = VolumeApi(base_url=url, token=TOKEN)
    instant = datetime.fromisoformat(at)
    out: dict[str, float] = {}
    t = time.perf_counter()
    body = data_dir / "body.json"
    api.fetch_to(body)
    out["fetch_s"] = time.perf_counter() - t
    t = time.perf_counter()
    normalized = normalize(body, snapshot_at=instant, observed_at=instant)
    out["normalize_s"] = time.perf_counter() - t
    t = time.perf_counter()
    lake.compress_zstd(body, data_dir / "raw.json.zst")
    out["compress_raw_s"] = time.perf_counter() - t
    t = time.perf_counter()
    lake.write_parquet(normalized.frame, data_dir / "lake.parquet")
    out["write_parquet_s"] = time.perf_counter() - t
    out["rows"] = normalized.frame.height
    return out


def _worker_dlt(url: str, data_dir: Path, at: str) -> dict[str, float]:
    started = time.perf_counter()
    import dlt
    from dlt.sources.rest_api import rest_api_source

    from pipelines.contract import API_FIELDS

    imported = time.perf_counter()
    os.environ["DLT_DATA_DIR"] = str(data_dir / "dlt_home")
    os.environ["DLT_PROJECT_DIR"] = str(data_dir / "dlt_project")
    source = rest_api_source(
        {
            "client": {"base_url": url, "auth": {"type": "bearer", "token": TOKEN}},
            "resource_defaults": {"endpoint": {"paginator": "single_page"}},
            "resources": [
                {
                    "name": "volumes",
                    "endpoint": {
                        "path": "v1/volumes",
                        "params": {"fields": ",".join(API_FIELDS)},
                        "data_selector": "$",
                    },
                }
            ],
        }
    )
    pipeline = dlt.pipeline(
        pipeline_name="bench_volumes",
        destination=dlt.destinations.filesystem(bucket_url=str(data_dir / "lake")),
        dataset_name="volcap",
        pipelines_dir=str(data_dir / "dlt_pipelines"),
    )
    t0 = time.perf_counter()
    info = pipeline.run(source, loader_file_format="parquet")
    t1 = time.perf_counter()
    rows = pipeline.last_trace.last_normalize_info.row_counts.get("volumes", 0)
    del info
    return {"import_s": imported - started, "wall_s": t1 - t0, "rows": rows}


WORKERS = {"volcap": _worker_volcap, "phases": _worker_phases, "dlt": _worker_dlt}


# -- driver ------------------------------------------------------------------------------------


def _run_child(argv: list[str], env: dict[str, str] | None = None) -> tuple[float, float, str]:
    """Wall seconds, peak RSS (MiB) and stdout of a child process.

    Peak RSS is the child's VmHWM from /proc, polled until it exits: `ru_maxrss` of a child
    (wait4, RUSAGE_CHILDREN) starts from the parent's RSS at fork, and this parent holds the
    simulator's prerendered body.
    """
    started = time.perf_counter()
    peak_kib = 0
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(argv, stdout=out, stderr=err, env=env, cwd=ROOT)
        status = Path(f"/proc/{proc.pid}/status")
        while proc.poll() is None:
            try:
                for line in status.read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        peak_kib = max(peak_kib, int(line.split()[1]))
            except (FileNotFoundError, ProcessLookupError, ValueError):
                pass
            time.sleep(0.02)
        wall = time.perf_counter() - started
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(), err.read().decode()
    if proc.returncode:
        raise RuntimeError(f"{argv[:4]} failed ({proc.returncode}): {stderr[-2000:]}")
    return wall, peak_kib / 1024, stdout


def _variant(kind: str, url: str, at: str, scratch: Path) -> dict[str, float]:
    data_dir = Path(tempfile.mkdtemp(prefix=f"{kind}-", dir=scratch))
    try:
        if kind == "cli":
            env = dict(os.environ)
            env.pop("DAGSTER_HOME", None)
            env.update(VOLCAP_API_URL=url, VOLCAP_API_TOKEN=TOKEN, VOLCAP_DATA_DIR=str(data_dir))
            volcap = str(Path(sys.executable).with_name("volcap"))
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            wall, rss, stdout = _run_child([volcap, "ingest", "--at", at], env)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
            # start-up = an interpreter that only imports what `volcap ingest` imports
            startup, _, _ = _run_child(
                [sys.executable, "-c", "import pipelines.runner, pipelines.definitions"]
            )
            return {
                "wall_s": wall,
                "cpu_s": cpu,
                "rss_mib": rss,
                "startup_s": startup,
                "line": stdout.strip(),
            }
        argv = [sys.executable, "-m", "bench.ingest", "--worker", kind, url, str(data_dir), at]
        wall, rss, stdout = _run_child(argv)
        result = json.loads(stdout.strip().splitlines()[-1])
        result["process_s"] = wall
        result["rss_mib"] = rss
        return result
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


def _median(runs: list[dict[str, float]], key: str) -> float:
    return statistics.median(float(r[key]) for r in runs if key in r)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--volumes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--variants",
        nargs="+",
        default=["volcap", "cli", "dlt"],
        choices=["volcap", "cli", "dlt", "phases"],
    )
    parser.add_argument("--dlt-runs", type=int, default=1, help="dlt is slow: runs per size")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--layouts",
        default="compact",
        help="comma-separated body layouts to serve in turn: compact, spaced, pretty",
    )
    parser.add_argument("--scratch", type=Path, default=None)
    parser.add_argument("--worker", nargs=4, metavar=("KIND", "URL", "DIR", "AT"))
    args = parser.parse_args()
    if args.worker:
        kind, url, data_dir, at = args.worker
        print(json.dumps(WORKERS[kind](url, Path(data_dir), at)))
        return

    from pipelines.contract import API_FIELDS
    from simulator import SimulatorServer
    from simulator.render import Layout, LayoutError

    try:
        layouts = [Layout(name.strip()) for name in args.layouts.split(",") if name.strip()]
    except LayoutError as exc:
        parser.error(str(exc))

    scratch = args.scratch or Path(tempfile.mkdtemp(prefix="volcap-ingest-bench-"))
    scratch.mkdir(parents=True, exist_ok=True)
    try:
        for volumes in args.volumes:
            t = time.perf_counter()
            with SimulatorServer(volumes=volumes, seed=args.seed, token=TOKEN) as sim:
                at = sim.now().isoformat()
                print(
                    f"\n== {volumes:,} volumes (simulator ready in {time.perf_counter() - t:.1f}s)"
                )
                for layout in layouts:
                    sim.set_layout(layout)
                    size = sim.prerender(list(API_FIELDS))
                    print(f"-- layout {layout.style}: body {size / 1e6:.0f} MB", flush=True)
                    results: dict[str, list[dict[str, float]]] = {}
                    # interleave variants so machine noise hits each one alike
                    for run in range(args.runs):
                        for kind in args.variants:
                            if kind == "dlt" and run >= args.dlt_runs:
                                continue
                            r = _variant(kind, sim.url, at, scratch)
                            results.setdefault(kind, []).append(r)
                            shown = {
                                k: (round(v, 2) if isinstance(v, float) else v)
                                for k, v in r.items()
                            }
                            print(f"  run {run + 1} {kind}: {shown}", flush=True)
                    _summarize(f"{volumes:,} volumes, {layout.style}", volumes, results)
    finally:
        if args.scratch is None:
            shutil.rmtree(scratch, ignore_errors=True)


def _summarize(title: str, volumes: int, results: dict[str, list[dict[str, float]]]) -> None:
    print(f"-- {title}, medians --")
    ours = None
    for kind, runs in results.items():
        if kind == "phases":
            print(
                "  phases  "
                + ", ".join(
                    f"{k} {_median(runs, k):.2f}s"
                    for k in runs[0]
                    if k.endswith("_s") and k != "process_s"
                )
            )
            continue
        wall = _median(runs, "wall_s")
        rss = _median(runs, "rss_mib")
        line = f"  {kind:7s} wall {wall:6.2f}s  {volumes / wall:>12,.0f} rec/s  peak RSS {rss:6,.0f} MiB"
        if any("cpu_s" in r for r in runs):
            line += f"  CPU {_median(runs, 'cpu_s'):.2f}s"
        if kind == "volcap":
            ours = wall
            line += (
                f"  (land_raw {_median(runs, 'land_raw_s'):.2f}s + publish_lake "
                f"{_median(runs, 'publish_lake_s'):.2f}s; imports {_median(runs, 'import_s'):.2f}s;"
                f" {'/'.join(sorted({str(r['validation_path']) for r in runs}))} path)"
            )
        if kind == "cli":
            line += f"  (whole process; of which interpreter + imports {_median(runs, 'startup_s'):.2f}s)"
        if kind == "dlt":
            line += f"  (imports {_median(runs, 'import_s'):.2f}s)"
            if ours:
                line += f"  → volcap is {wall / ours:.1f}× faster"
        print(line)


if __name__ == "__main__":
    main()
