"""Every fenced code block of README.md runs, against a small fleet built the way a user's is.

The fleet: two sources from the simulator over loopback — `default` (the demo's fleet: seed 7,
2,000 volumes, so the README's example volume exists) and `eu-west` (seed 8, 200 volumes) —
three days of snapshots every two hours through the real ingestion code, then a real build.

How each block is run, by its language:

- `sql`: statement by statement on the warehouse, opened read-only (as `make sql` does), from
  the directory holding `data/` (so `data/lake/...` paths resolve); every query returns rows.
- `python`: in a subprocess from that directory with `VOLCAP_DATA_DIR` pointing at the data;
  every top-level expression that yields a frame yields rows.
- `sh`/`bash`: `bash -euo pipefail` in a fresh clone-like directory (links to the checkout's
  files, its own empty `data/`) with the virtual environment's `bin` first on the PATH; a job
  the block leaves in the background is stopped with its process group afterwards.
- `crontab`: each entry's command through `/bin/sh` with cron's bare environment, against a
  simulator serving the present.
- `toml`: loaded as a sources file; `yaml`: parsed.

Placeholders replaced before running: `/srv/volcap` and `/path/to/data` (the data dir),
`/opt/volcap` (the checkout), `/etc/volcap/volcap.env` (a file with the simulator's URL and key)
and port 8080 (a free loopback port). Anything else must run as written, unless an HTML comment
on the line before the fence says otherwise:

- `<!-- readme-test: skip (reason) -->` — not run, for the reason given (a reason is required);
- `<!-- readme-test: same-as TABLE -->` — the result (SQL) or the variable `TABLE` (python)
  also equals the warehouse's TABLE, row for row.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import signal
import socket
import subprocess
import sys
import time
import tomllib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest
import yaml

from pipelines.ingest import Window, land_raw, publish_lake
from pipelines.lake import DataDir
from pipelines.resources import VolumeApi
from pipelines.sources import load_sources
from pipelines.warehouse import build_warehouse
from simulator import SimulatorServer

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
VENV_BIN = Path(sys.executable).parent
TOKEN = "canary-readme-5c21"
DAYS = 3
STEP_HOURS = 2
#: (source, seed, volumes): `default` is the demo's fleet (`volcap demo` defaults)
SOURCES = (("default", 7, 2000), ("eu-west", 8, 200))
ANNOTATION = re.compile(r"^<!--\s*readme-test:\s*(?P<kind>[a-z-]+)\s*(?P<arg>.*?)\s*-->$")
FENCE = re.compile(r"^```(?P<lang>[A-Za-z0-9_+-]*)\s*$")


@dataclass(frozen=True)
class Block:
    line: int
    lang: str
    text: str
    kind: str = "run"  # run | skip | same-as
    arg: str = ""

    @property
    def id(self) -> str:
        return f"L{self.line}-{self.lang or 'plain'}"


def readme_blocks(text: str) -> list[Block]:
    """Every fenced block, with the annotation on the line before it (if any)."""
    lines = text.splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        fence = FENCE.match(lines[i])
        if not fence:
            i += 1
            continue
        end = next(j for j in range(i + 1, len(lines)) if lines[j].startswith("```"))
        annotation = ANNOTATION.match(lines[i - 1].strip()) if i else None
        kind, arg = (annotation["kind"], annotation["arg"]) if annotation else ("run", "")
        blocks.append(Block(i + 1, fence["lang"], "\n".join(lines[i + 1 : end]) + "\n", kind, arg))
        i = end + 1
    return blocks


BLOCKS = readme_blocks(README.read_text())


def test_every_block_is_run_or_says_why_not():
    assert len(BLOCKS) >= 25
    runnable = {"sql", "python", "sh", "bash", "crontab", "toml", "yaml"}
    for block in BLOCKS:
        if block.kind == "skip":
            assert re.fullmatch(r"\(.{10,}\)", block.arg), f"{block.id}: skip needs a (reason)"
        else:
            assert block.kind in ("run", "same-as"), f"{block.id}: unknown annotation"
            assert block.lang in runnable, f"{block.id}: no way to run {block.lang!r}: annotate it"
    assert sum(block.kind != "skip" for block in BLOCKS) >= 12


# -- the fleet ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Fleet:
    root: Path  # holds data/

    @property
    def data(self) -> Path:
        return self.root / "data"


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Fleet:
    root = tmp_path_factory.mktemp("readme")
    data = DataDir.at(root / "data")
    end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    start = end - timedelta(days=DAYS)
    for source, seed, volumes in SOURCES:
        with SimulatorServer(volumes=volumes, seed=seed, token=TOKEN, start=start) as sim:
            api = VolumeApi(base_url=sim.url, token=TOKEN)
            for step in range(DAYS * 24 // STEP_HOURS):
                window = start + timedelta(hours=step * STEP_HOURS)
                sim.set_clock(window + timedelta(minutes=5))
                land_raw(api, data.for_source(source), Window(window, window + timedelta(hours=1)))
                publish_lake(data.for_source(source), window)
    build_warehouse(data.root)
    return Fleet(root)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _substitute(text: str, data_dir: Path, **extra: str) -> str:
    replacements = {"/srv/volcap": str(data_dir), "/path/to/data": str(data_dir), **extra}
    for placeholder, value in replacements.items():
        text = text.replace(placeholder, value)
    return text


def _table(con: duckdb.DuckDBPyConnection, name: str) -> tuple[list[str], list[tuple[Any, ...]]]:
    cursor = con.execute(f'select * from "{name}"')
    return [d[0] for d in cursor.description], cursor.fetchall()


def _same_rows(
    got: tuple[list[str], list[tuple[Any, ...]]], want: tuple[list[str], list[tuple[Any, ...]]]
) -> bool:
    """The same rows and columns, by name; floats to 1e-9."""
    if sorted(got[0]) != sorted(want[0]):
        return False
    order = [got[0].index(name) for name in want[0]]
    got_rows = [tuple(row[i] for i in order) for row in got[1]]
    want_rows = want[1]

    def close(a: Any, b: Any) -> bool:
        if isinstance(a, float) or isinstance(b, float):
            return a is not None and b is not None and math.isclose(a, b, rel_tol=1e-9)
        return bool(a == b)

    return len(got_rows) == len(want_rows) and all(
        all(close(a, b) for a, b in zip(g, w, strict=True))
        for g, w in zip(sorted(got_rows, key=repr), sorted(want_rows, key=repr), strict=True)
    )


# -- sql ------------------------------------------------------------------------------------------

SQL_BLOCKS = [b for b in BLOCKS if b.lang == "sql" and b.kind != "skip"]


@pytest.mark.parametrize("block", SQL_BLOCKS, ids=[b.id for b in SQL_BLOCKS])
def test_sql_block_returns_rows(block: Block, fleet: Fleet, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(fleet.root)
    with duckdb.connect(str(fleet.data / "warehouse.duckdb"), read_only=True) as con:
        con.execute("set timezone = 'UTC'")  # the README's rule for every reader of the lake
        statements = con.extract_statements(_substitute(block.text, fleet.data))
        assert statements, block.text
        for statement in statements:
            cursor = con.execute(statement)
            rows = cursor.fetchall()
            assert rows, f"README line {block.line}: no rows from\n{statement.query}"
        if block.kind == "same-as":
            got = ([d[0] for d in cursor.description], rows)
            assert _same_rows(got, _table(con, block.arg)), f"{block.id} differs from {block.arg}"


# -- python ---------------------------------------------------------------------------------------

#: Runs a block; reports the size of each top-level expression's value, and with `same-as`,
#: writes the named variable to Parquet.
PYTHON_RUNNER = """
import ast, json, sys
source, same_as, out = sys.argv[1], sys.argv[2], sys.argv[3]
tree = ast.parse(source)
namespace, sizes = {"__name__": "__main__"}, []
for node in tree.body:
    if isinstance(node, ast.Expr):
        value = eval(compile(ast.Expression(node.value), "README.md", "eval"), namespace)
        if hasattr(value, "collect"):
            value = value.collect()
        if hasattr(value, "height"):
            sizes.append([node.lineno, value.height])
    else:
        exec(compile(ast.Module([node], []), "README.md", "exec"), namespace)
if same_as:
    namespace[same_as].write_parquet(out + ".parquet")
with open(out, "w") as f:
    json.dump(sizes, f)
"""

PYTHON_BLOCKS = [b for b in BLOCKS if b.lang == "python" and b.kind != "skip"]


@pytest.mark.parametrize("block", PYTHON_BLOCKS, ids=[b.id for b in PYTHON_BLOCKS])
def test_python_block_runs(block: Block, fleet: Fleet, tmp_path: Path):
    out = tmp_path / "sizes.json"
    same_as = block.arg if block.kind == "same-as" else ""
    source = _substitute(block.text, fleet.data)
    result = subprocess.run(
        [sys.executable, "-c", PYTHON_RUNNER, source, same_as, str(out)],
        cwd=fleet.root,
        env={**os.environ, "VOLCAP_DATA_DIR": str(fleet.data)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, f"README line {block.line}:\n{result.stderr}"
    for line, height in json.loads(out.read_text()):
        assert height > 0, f"README line {block.line + line}: an empty frame"
    if same_as:
        with duckdb.connect(str(fleet.data / "warehouse.duckdb"), read_only=True) as con:
            cursor = con.execute("select * from read_parquet(?)", [f"{out}.parquet"])
            got = ([d[0] for d in cursor.description], cursor.fetchall())
            assert got[1] and _same_rows(got, _table(con, same_as)), f"{block.id} != {same_as}"


# -- toml, yaml -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "block",
    [b for b in BLOCKS if b.lang == "toml" and b.kind != "skip"],
    ids=lambda b: b.id,
)
def test_toml_block_is_a_valid_sources_file(block: Block, tmp_path: Path):
    path = tmp_path / "sources.toml"
    path.write_text(block.text)
    names = [source.name for source in load_sources(path)]
    assert names == [s["name"] for s in tomllib.loads(block.text)["sources"]]


@pytest.mark.parametrize(
    "block",
    [b for b in BLOCKS if b.lang == "yaml" and b.kind != "skip"],
    ids=lambda b: b.id,
)
def test_yaml_block_parses(block: Block):
    assert isinstance(yaml.safe_load(block.text), dict)


# -- shell and cron -------------------------------------------------------------------------------


def clone_like(tmp_path: Path) -> Path:
    """A directory like a fresh clone: the checkout's files by link, its own empty data dir."""
    clone = tmp_path / "volcap"
    clone.mkdir()
    for entry in REPO.iterdir():
        if entry.name not in ("data", ".git", ".pytest_cache"):
            (clone / entry.name).symlink_to(entry)
    (clone / "data").mkdir()
    return clone


def shell_env(**extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("VOLCAP_", "DAGSTER_", "AWS_")) and k != "VIRTUAL_ENV"
    }
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '/usr/bin:/bin')}"
    return {**env, **extra}


def run_detached(command: list[str], *, cwd: Path, env: dict[str, str], timeout: float) -> str:
    """Run in a new session and stop whatever the command left behind (a `cmd &`); returns
    the output, failing on a non-zero exit."""
    log = cwd / ".readme-test.log"
    with open(log, "w") as out:
        process = subprocess.Popen(
            command, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            code = process.wait(timeout=timeout)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
    output = log.read_text()
    assert code == 0, output
    return output


SHELL_BLOCKS = [b for b in BLOCKS if b.lang in ("sh", "bash") and b.kind != "skip"]


@pytest.mark.parametrize("block", SHELL_BLOCKS, ids=[b.id for b in SHELL_BLOCKS])
def test_shell_block_runs(block: Block, tmp_path: Path):
    clone = clone_like(tmp_path)
    port = str(_free_port())
    script = _substitute(block.text, clone / "data", **{"/opt/volcap": str(clone)})
    script = re.sub(r"(--port |:)8080\b", rf"\g<1>{port}", script)
    run_detached(
        ["bash", "-euo", "pipefail", "-c", script], cwd=clone, env=shell_env(), timeout=300
    )


CRON_BLOCKS = [b for b in BLOCKS if b.lang == "crontab" and b.kind != "skip"]


def crontab_entries(text: str) -> tuple[dict[str, str], list[tuple[list[str], str]]]:
    """A crontab's variable assignments and its entries (five time fields, a command)."""
    variables, entries = {}, []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if re.match(r"^[A-Z_]+=", line):
            name, _, value = line.partition("=")
            variables[name] = value
            continue
        fields = line.split(None, 5)
        assert len(fields) == 6, f"not a crontab entry: {line}"
        for field in fields[:5]:
            assert re.fullmatch(r"[0-9*/,-]+", field), f"bad time field {field!r} in {line}"
        entries.append((fields[:5], fields[5]))
    return variables, entries


@pytest.mark.parametrize("block", CRON_BLOCKS, ids=[b.id for b in CRON_BLOCKS])
def test_crontab_entries_run_against_the_simulator(block: Block, tmp_path: Path, simulator):
    """cron starts each command with a bare environment: everything must come from the entry."""
    now = datetime.now(UTC)
    if now.minute == 59 and now.second >= 30:  # `ingest` takes the window it starts in: wait
        time.sleep(61 - now.second)  # for the next one rather than straddle two (not timing)
        now = datetime.now(UTC)
    now = now.replace(microsecond=0)
    sim = simulator(volumes=150, seed=3, token=TOKEN, start=now, speed=1.0)
    clone = clone_like(tmp_path)
    data_dir = tmp_path / "srv-volcap"
    env_file = tmp_path / "volcap.env"
    env_file.write_text(
        f"VOLCAP_API_URL={sim.url}\nVOLCAP_API_TOKEN={TOKEN}\nVOLCAP_DATA_DIR={data_dir}\n"
    )
    variables, entries = crontab_entries(block.text)
    commands = re.findall(r"volcap (\w+)", " ".join(command for _, command in entries))
    assert commands == ["ingest", "compact", "build", "report"]
    home = tmp_path / "home"
    home.mkdir()
    cron_env = {"HOME": str(home), "LOGNAME": "volcap", "PATH": "/usr/bin:/bin", "SHELL": "/bin/sh"}
    for _, command in entries:
        command = _substitute(
            command,
            data_dir,
            **{"/etc/volcap/volcap.env": str(env_file), "/opt/volcap": str(clone)},
        )
        run_detached(
            [cron_env["SHELL"] if "SHELL" not in variables else variables["SHELL"], "-c", command],
            cwd=home,
            env={**cron_env, **variables},
            timeout=300,
        )
    assert (data_dir / "warehouse.duckdb").exists()
    assert (data_dir / "reports" / "capacity.html").exists()


def test_schedules_and_sensors_named_in_the_readme_exist():
    from pipelines.definitions import defs

    named = set()
    for block in BLOCKS:
        for kind, name in re.findall(
            r"dagster (schedule|sensor) (?:start|stop) ([a-z_]+)", block.text
        ):
            named.add((kind, name))
            if kind == "schedule":
                assert defs.resolve_schedule_def(name).name == name
            else:
                assert defs.resolve_sensor_def(name).name == name
    assert ("schedule", "snapshot_schedule") in named
