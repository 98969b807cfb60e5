"""Every mistake a new user makes gets one line naming the setting, its value and what is
expected, and a non-zero exit; mistakes that need no network are caught before Dagster loads."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from fakes.faultserver import FaultServer, Reply
from fakes.payloads import body, volume
from simulator import DEFAULT_START

ROOT = Path(__file__).resolve().parents[1]
KEY = "canary-errors-4f2a9c"
CONFIG = (
    "VOLCAP_API_URL",
    "VOLCAP_API_TOKEN",
    "VOLCAP_SOURCES",
    "VOLCAP_CADENCE_MINUTES",
    "VOLCAP_FETCH_DEADLINE_SECONDS",
    "VOLCAP_STALL_TIMEOUT_SECONDS",
)


def run(*args: str, env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k not in CONFIG}
    base.update(VOLCAP_DATA_DIR=str(tmp_path / "data"), DAGSTER_HOME=str(tmp_path / "home"))
    return subprocess.run(
        [sys.executable, "-m", "pipelines.cli", *args],
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=180,
        cwd=ROOT,
    )


def one_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode != 0
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


def rejected_before_dagster(argv: list[str], env: dict[str, str], tmp_path: Path) -> str:
    """The CLI in process: its one line, and proof that Dagster was never imported."""
    code = (
        "import contextlib, io, json, sys\n"
        "from pipelines.cli import main\n"
        "err = io.StringIO()\n"
        "with contextlib.redirect_stderr(err):\n"
        "    try:\n"
        f"        rc = main({argv!r})\n"
        "    except SystemExit as usage:\n"
        "        rc = usage.code\n"
        "print(json.dumps([rc, err.getvalue(), 'dagster' in sys.modules]))\n"
    )
    base = {k: v for k, v in os.environ.items() if k not in CONFIG}
    done = subprocess.run(
        [sys.executable, "-c", code],
        env={**base, "VOLCAP_DATA_DIR": str(tmp_path / "data"), **env},
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    rc, stderr, dagster_loaded = json.loads(done.stdout)
    assert rc != 0 and not dagster_loaded
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    return lines[0]


@pytest.mark.parametrize(
    ("argv", "env", "names"),
    [
        pytest.param(
            ["ingest"], {"VOLCAP_API_TOKEN": KEY}, ["VOLCAP_API_URL", "base URL"], id="no-url"
        ),
        pytest.param(
            ["ingest"],
            {"VOLCAP_API_URL": "http://127.0.0.1:9"},
            ["VOLCAP_API_TOKEN"],
            id="no-token",
        ),
        pytest.param(
            ["ingest"],
            {"VOLCAP_API_URL": "https://api.example.com/v1/volumes", "VOLCAP_API_TOKEN": KEY},
            ["VOLCAP_API_URL", "/v1/volumes", "expected the base URL: https://api.example.com"],
            id="url-with-path",
        ),
        pytest.param(
            ["ingest"],
            {"VOLCAP_API_URL": "api.example.com", "VOLCAP_API_TOKEN": KEY},
            ["VOLCAP_API_URL", "'api.example.com'", "http(s)"],
            id="url-without-scheme",
        ),
        pytest.param(
            ["build"],
            {"VOLCAP_CADENCE_MINUTES": "hourly"},
            ["VOLCAP_CADENCE_MINUTES", "'hourly'", "15, 20, 30, 60"],
            id="cadence-word",
        ),
        pytest.param(
            ["report"],
            {"VOLCAP_CADENCE_MINUTES": "45"},
            ["VOLCAP_CADENCE_MINUTES=45", "15, 20, 30, 60"],
            id="cadence-unsupported",
        ),
        pytest.param(
            ["ingest", "--at", "2099-01-01T00:00:00Z"],
            {"VOLCAP_API_URL": "http://127.0.0.1:9", "VOLCAP_API_TOKEN": KEY},
            ["--at 2099-01-01T00:00:00Z", "future", "current 60-minute window"],
            id="at-in-the-future",
        ),
        pytest.param(
            ["ingest", "--at", "tomorrow"],
            {"VOLCAP_API_URL": "http://127.0.0.1:9", "VOLCAP_API_TOKEN": KEY},
            ["--at", "'tomorrow'", "ISO 8601"],
            id="at-not-an-instant",
        ),
        pytest.param(
            ["ingest"],
            {
                "VOLCAP_API_URL": "http://127.0.0.1:9",
                "VOLCAP_API_TOKEN": KEY,
                "VOLCAP_FETCH_DEADLINE_SECONDS": "15m",
            },
            ["VOLCAP_FETCH_DEADLINE_SECONDS='15m'", "number of seconds", "900"],
            id="deadline-not-seconds",
        ),
        pytest.param(
            ["ingest"],
            {
                "VOLCAP_API_URL": "http://127.0.0.1:9",
                "VOLCAP_API_TOKEN": KEY,
                "VOLCAP_CADENCE_MINUTES": "15",
                "VOLCAP_FETCH_DEADLINE_SECONDS": "1200",
            },
            ["VOLCAP_FETCH_DEADLINE_SECONDS='1200'", "at most 900 (one cadence window)", "225"],
            id="deadline-beyond-the-window",
        ),
        pytest.param(
            ["ingest"],
            {
                "VOLCAP_API_URL": "http://127.0.0.1:9",
                "VOLCAP_API_TOKEN": KEY,
                "VOLCAP_STALL_TIMEOUT_SECONDS": "0",
            },
            ["VOLCAP_STALL_TIMEOUT_SECONDS='0'", "above 0", "30"],
            id="stall-timeout-zero",
        ),
        pytest.param(
            ["ingest"],
            {"VOLCAP_SOURCES": "/nonexistent/sources.toml"},
            ["sources.toml not found", "VOLCAP_SOURCES"],
            id="sources-file-missing",
        ),
    ],
)
def test_configuration_mistakes_are_one_line_before_dagster_loads(argv, env, names, tmp_path):
    line = rejected_before_dagster(argv, env, tmp_path)
    assert line.startswith(f"volcap {argv[0]}: error: ")
    for name in names:
        assert name in line
    assert KEY not in line


def test_a_rejected_key_names_the_sources_own_variable(simulator, tmp_path):
    sim = simulator(volumes=20, seed=2, token="the-right-key")
    at = DEFAULT_START + timedelta(hours=3, minutes=5)
    sim.set_clock(at)
    sources = tmp_path / "sources.toml"
    sources.write_text(f'[[sources]]\nname = "eu"\nurl = "{sim.url}"\ntoken_env = "KEY_EU"\n')
    result = run(
        "ingest", "--at", at.isoformat(),
        env={"VOLCAP_SOURCES": str(sources), "KEY_EU": KEY},
        tmp_path=tmp_path,
    )  # fmt: skip
    line = one_line(result)
    assert "HTTP 401" in line and "KEY_EU" in line
    assert "VOLCAP_API_TOKEN" not in line and KEY not in line


def test_a_404_shows_the_url_it_called(simulator, tmp_path):
    sim = simulator(volumes=20, seed=2, token=KEY)
    at = DEFAULT_START + timedelta(hours=3, minutes=5)
    sim.set_clock(at)
    result = run(
        "ingest", "--at", at.isoformat(),
        env={"VOLCAP_API_URL": sim.url + "/api", "VOLCAP_API_TOKEN": KEY},
        tmp_path=tmp_path,
    )  # fmt: skip
    line = one_line(result)
    assert f"HTTP 404 from {sim.url}/api/v1/volumes" in line
    assert "base URL" in line


def test_ingest_against_an_api_whose_clock_is_behind_says_so_and_what_to_run(simulator, tmp_path):
    """The simulator's default clock is frozen at its start (2025-01-06): the partition asked
    for (now) is in the API's future, not its past."""
    sim = simulator(volumes=20, seed=2, token=KEY)
    result = run(
        "ingest", env={"VOLCAP_API_URL": sim.url, "VOLCAP_API_TOKEN": KEY}, tmp_path=tmp_path
    )
    line = one_line(result)
    assert "before partition" in line and "behind" in line
    assert f"volcap ingest --at {DEFAULT_START:%Y-%m-%dT%H:%M:%SZ}" in line
    assert not (tmp_path / "data" / "lake").exists()


def test_a_silent_peer_fails_ingest_within_the_deadline_in_one_line(tmp_path):
    """Headers and half the body, then silence on an open connection: each attempt stalls for
    2 s, and the 6 s deadline ends the fetch (overrun by at most one stall); nothing lands.
    (Seconds, not fractions: a loaded machine must still deliver the headers in time.)"""
    stalled = Reply(body=body([volume(i) for i in range(1, 40)]), mode="stall")
    with FaultServer([stalled]) as srv:
        result = run(
            "ingest",
            env={
                "VOLCAP_API_URL": srv.url,
                "VOLCAP_API_TOKEN": KEY,
                "VOLCAP_FETCH_DEADLINE_SECONDS": "6",
                "VOLCAP_STALL_TIMEOUT_SECONDS": "2",
            },
            tmp_path=tmp_path,
        )
    line = one_line(result)
    assert f"gave up on {srv.url}/v1/volumes at the 6s fetch deadline after " in line
    took = float(re.search(r" attempts? in ([\d.]+)s: ", line).group(1))  # type: ignore[union-attr]
    assert took < 6 + 2
    assert f"received {len(stalled.body) // 2} of {len(stalled.body)} bytes" in line
    assert "then stalled for " in line
    assert f"after {len(srv.seen)} attempt" in line
    assert KEY not in line
    data = tmp_path / "data"
    assert not (data / "lake").exists() or not any((data / "lake").rglob("*.parquet"))
    assert not (data / "raw").exists() or not any((data / "raw").rglob("*.*"))


def test_simulate_on_a_busy_port_is_one_line(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        result = run("simulate", "--port", str(port), env={}, tmp_path=tmp_path)
    line = one_line(result)
    assert f"--port {port}" in line and "in use" in line and "--port 0" in line


def test_simulate_with_a_start_that_is_not_an_instant_is_one_line(tmp_path):
    result = run("simulate", "--start", "tomorrow", env={}, tmp_path=tmp_path)
    line = one_line(result)
    assert "--start" in line and "'tomorrow'" in line and "ISO 8601" in line
