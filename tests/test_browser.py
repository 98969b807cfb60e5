"""The capacity report in a real browser: headless Chromium renders it offline without errors."""

from __future__ import annotations

import re
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from pipelines import report
from tests import reportcase

pytestmark = pytest.mark.browser

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
#: Headless, no sandbox (containers), and nothing in the background: no updates, sync, QUIC or
#: first-run traffic. Every host name resolves to nothing, so a reference to anything outside
#: the file would fail to load and show up as a console error.
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--host-resolver-rules=MAP * ~NOTFOUND",
)


def chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    profile = tmp_path / "profile"
    return subprocess.run(
        [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )


@pytest.fixture(scope="module")
def report_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (apt-get install -y chromium; .ci/run tries this)")
    return report.write_report(reportcase.build(tmp_path_factory.mktemp("data"))).path


def test_report_renders_without_console_errors(report_file: Path, tmp_path: Path) -> None:
    result = chromium(
        tmp_path, "--enable-logging=stderr", "--v=0", "--dump-dom", report_file.as_uri()
    )
    assert result.returncode == 0, result.stderr[-2000:]
    console = [line for line in result.stderr.splitlines() if "CONSOLE" in line]
    assert console == [], console
    assert "ERR_NAME_NOT_RESOLVED" not in result.stderr
    dom = result.stdout
    assert dom.count("<svg") >= 3, "fleet chart, status chart and sparklines"
    assert re.search(r'<polyline points="[^"]+"', dom), "the fleet chart draws a line"
    rows = 0
    for table_id in ("already-full-table", "at-risk-table"):  # full volumes have their own list
        table = dom[dom.index(f'id="{table_id}"') :]
        table = table[: table.index("</table>")]
        rows += len(re.findall(r"<tr id=\"volume-|<tr><td", table))
    assert rows >= 3
    assert "critical" in table


def test_report_screenshot_is_saved(report_file: Path, tmp_path: Path) -> None:
    shot = tmp_path / "report.png"
    result = chromium(
        tmp_path, f"--screenshot={shot}", "--window-size=1400,2000", report_file.as_uri()
    )
    assert result.returncode == 0, result.stderr[-2000:]
    header = shot.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    assert struct.unpack(">II", header[16:24]) == (1400, 2000)
    assert shot.stat().st_size > 20_000, "a blank page compresses to almost nothing"
