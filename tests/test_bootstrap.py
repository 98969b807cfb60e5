"""`make install` on a Python without pip: uv comes from the package index, checked by sha256.

The index is a loopback server speaking the simple-index JSON API (PEP 691) and serving a
stand-in wheel whose `uv` is a shell script, so the bootstrap's whole path runs for real.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
import threading
import zipfile
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

BOOTSTRAP = Path(__file__).resolve().parents[1] / "tools" / "bootstrap_uv.py"
VERSION = "0.0.1"
sys.path.insert(0, str(BOOTSTRAP.parent))
import bootstrap_uv  # noqa: E402


def _wheel_name() -> str:
    system, machine, libc = bootstrap_uv.this_platform()
    if system == "darwin":
        return f"uv-{VERSION}-py3-none-macosx_11_0_{machine}.whl"
    family = "manylinux_2_17" if libc == "glibc" else "musllinux_1_1"
    return f"uv-{VERSION}-py3-none-{family}_{machine}.whl"


def _wheel() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr(f"uv-{VERSION}.data/scripts/uv", f"#!/bin/sh\necho uv {VERSION}\n")
        zf.writestr(f"uv-{VERSION}.dist-info/METADATA", f"Name: uv\nVersion: {VERSION}\n")
    return buffer.getvalue()


class _Index:
    def __init__(self, *, sha256: str | None = None) -> None:
        self.wheel = _wheel()
        self.sha256 = sha256 or hashlib.sha256(self.wheel).hexdigest()
        self.requests: list[str] = []
        index = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                index.requests.append(self.path)
                if self.path == "/simple/uv/":
                    body = json.dumps(
                        {
                            "meta": {"api-version": "1.0"},
                            "name": "uv",
                            "files": [
                                {
                                    "filename": "uv-0.0.1-py3-none-win_amd64.whl",
                                    "url": "/files/wrong.whl",
                                    "hashes": {"sha256": "0" * 64},
                                },
                                {
                                    "filename": _wheel_name(),
                                    "url": "/files/uv.whl",
                                    "hashes": {"sha256": index.sha256},
                                },
                            ],
                        }
                    ).encode()
                    content_type = "application/vnd.pypi.simple.v1+json"
                elif self.path == "/files/uv.whl":
                    body, content_type = index.wheel, "application/octet-stream"
                else:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/simple"

    def __enter__(self) -> _Index:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def index() -> Iterator[_Index]:
    with _Index() as served:
        yield served


def _bootstrap(index_url: str, dest: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("UV_", "PIP_INDEX"))}
    env["UV_DEFAULT_INDEX"] = index_url
    return subprocess.run(
        [
            sys.executable,
            str(BOOTSTRAP),
            "--version",
            VERSION,
            "--dest",
            str(dest),
            "--method",
            "index",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


def test_bootstrap_unpacks_uv_for_this_platform_from_the_index(index: _Index, tmp_path: Path):
    done = _bootstrap(index.url, tmp_path / ".tools")
    assert done.returncode == 0, done.stderr
    uv = tmp_path / ".tools" / "bin" / "uv"
    assert subprocess.run([uv], capture_output=True, text=True).stdout.strip() == "uv 0.0.1"
    assert "/files/wrong.whl" not in index.requests


def test_bootstrap_refuses_a_wheel_whose_sha256_differs(tmp_path: Path):
    with _Index(sha256="f" * 64) as lying:
        done = _bootstrap(lying.url, tmp_path / ".tools")
    assert done.returncode == 1
    assert "does not match its sha256" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / ".tools" / "bin" / "uv").exists()


def test_bootstrap_says_so_in_one_line_when_the_index_is_unreachable(tmp_path: Path):
    done = _bootstrap("http://127.0.0.1:9/simple", tmp_path / ".tools")
    assert done.returncode == 1
    assert done.stderr.startswith("bootstrap: could not install uv 0.0.1")
    assert len(done.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("filename", "system", "machine", "libc", "fits"),
    [
        (
            "uv-1-py3-none-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
            "linux",
            "x86_64",
            "glibc",
            True,
        ),
        ("uv-1-py3-none-musllinux_1_1_x86_64.whl", "linux", "x86_64", "glibc", False),
        ("uv-1-py3-none-musllinux_1_1_x86_64.whl", "linux", "x86_64", "musl", True),
        (
            "uv-1-py3-none-manylinux_2_17_aarch64.manylinux2014_aarch64.whl",
            "linux",
            "aarch64",
            "glibc",
            True,
        ),
        (
            "uv-1-py3-none-manylinux_2_17_aarch64.manylinux2014_aarch64.whl",
            "linux",
            "x86_64",
            "glibc",
            False,
        ),
        ("uv-1-py3-none-macosx_11_0_arm64.whl", "darwin", "arm64", "", True),
        ("uv-1-py3-none-macosx_10_12_x86_64.whl", "darwin", "arm64", "", False),
        ("uv-1-py3-none-win_amd64.whl", "linux", "x86_64", "glibc", False),
    ],
    ids=[
        "glibc-x86",
        "musl-on-glibc",
        "musl",
        "glibc-arm",
        "arm-on-x86",
        "mac-arm",
        "mac-x86-on-arm",
        "windows",
    ],
)
def test_wheel_platform_matching(filename, system, machine, libc, fits):
    assert bootstrap_uv.platform_matches(filename, system, machine, libc) is fits
