"""Install uv into the checkout (`.tools/`), on any Python, without touching the system.

`make install` runs this only when no `uv` is on the PATH. Two ways, in order:

1. the uv wheel for this platform, fetched from the package index (`UV_DEFAULT_INDEX`,
   `UV_INDEX_URL` or `PIP_INDEX_URL`, else PyPI) with the standard library, its sha256 checked
   against the index, and the `uv` binary unpacked from it (about 2 s). This is what pip would
   do for a wheel that holds one executable; it is written out here because pip is what a stock
   distribution Python lacks or refuses to use (Debian's python3 without python3-pip or
   python3-venv; PEP 668 "externally managed" environments);
2. where that index cannot be read (a mirror configured only in pip's own configuration):
   a private virtual environment and pip (`python3 -m venv .tools/venv`, `pip install uv`),
   so pip's configuration applies and nothing lands in the system's site-packages.

Usage: python3 tools/bootstrap_uv.py --version 0.13.9 --dest .tools [--method venv|index]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import urllib.request
import zipfile
from pathlib import Path

DEFAULT_INDEX = "https://pypi.org/simple"
SIMPLE_JSON = "application/vnd.pypi.simple.v1+json"


class BootstrapError(RuntimeError):
    """uv could not be installed; the message says why in one line."""


def index_url() -> str:
    """The package index: uv's and pip's variables are honoured, as uv itself will."""
    for name in ("UV_DEFAULT_INDEX", "UV_INDEX_URL", "PIP_INDEX_URL"):
        value = os.environ.get(name, "").strip()
        if value:
            return value.rstrip("/")
    return DEFAULT_INDEX


def platform_matches(filename: str, system: str, machine: str, libc: str) -> bool:
    """Whether a uv wheel's platform tags fit this machine."""
    tags = filename[: -len(".whl")].split("-")[-1].split(".")
    machine = {"amd64": "x86_64", "arm64": "aarch64"}.get(machine.lower(), machine.lower())
    if system == "linux":
        family = "manylinux" if libc == "glibc" else "musllinux"
        return any(t.startswith(family) and t.endswith("_" + machine) for t in tags)
    if system == "darwin":
        arch = "arm64" if machine == "aarch64" else machine
        return any(
            t.startswith("macosx") and (t.endswith("_" + arch) or "universal2" in t) for t in tags
        )
    return False


def this_platform() -> tuple[str, str, str]:
    libc = platform.libc_ver()[0] or ("glibc" if sys.platform == "linux" else "")
    if sys.platform == "linux" and not libc and Path("/lib/ld-musl-x86_64.so.1").exists():
        libc = "musl"
    return sys.platform, platform.machine(), libc


def _get(url: str, accept: str = "*/*") -> tuple[bytes, str]:
    request = urllib.request.Request(
        url, headers={"Accept": accept, "User-Agent": "volcap-bootstrap"}
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.read(), response.headers.get("Content-Type", "")
    except OSError as exc:
        raise BootstrapError(f"cannot read {url}: {exc}") from None


def wheel_links(index: str, version: str) -> list[tuple[str, str, str]]:
    """(filename, url, sha256) of every uv wheel of `version` the index lists."""
    page = f"{index}/uv/"
    body, content_type = _get(page, f"{SIMPLE_JSON}, text/html;q=0.1")
    links: list[tuple[str, str, str]] = []
    if "json" in content_type:
        for entry in json.loads(body)["files"]:
            url = urllib.request.urljoin(page, entry["url"])
            links.append((entry["filename"], url, entry.get("hashes", {}).get("sha256", "")))
    else:  # PEP 503 HTML, still what some mirrors serve
        for href in re.findall(r'href="([^"]+)"', body.decode()):
            url = urllib.request.urljoin(page, href.replace("&amp;", "&"))
            name = url.split("#")[0].rsplit("/", 1)[-1]
            digest = re.search(r"#sha256=([0-9a-f]{64})", url)
            links.append((name, url.split("#")[0], digest.group(1) if digest else ""))
    prefix = f"uv-{version}-"
    return [link for link in links if link[0].startswith(prefix) and link[0].endswith(".whl")]


def install_from_index(version: str, bin_dir: Path) -> Path:
    index = index_url()
    system, machine, libc = this_platform()
    candidates = [
        link
        for link in wheel_links(index, version)
        if platform_matches(link[0], system, machine, libc)
    ]
    if not candidates:
        raise BootstrapError(
            f"no uv {version} wheel for {system}/{machine} ({libc or 'unknown libc'}) on {index}"
        )
    filename, url, sha256 = candidates[0]
    if not sha256:
        raise BootstrapError(f"{index} lists no sha256 for {filename}; refusing to trust it")
    wheel, _ = _get(url)
    if hashlib.sha256(wheel).hexdigest() != sha256:
        raise BootstrapError(f"{filename} from {index} does not match its sha256")
    bin_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=bin_dir) as tmp:
        archive = Path(tmp) / filename
        archive.write_bytes(wheel)
        with zipfile.ZipFile(archive) as zf:
            for name in ("uv", "uvx"):
                member = f"uv-{version}.data/scripts/{name}"
                if member not in zf.namelist():
                    if name == "uv":
                        raise BootstrapError(f"{filename} holds no {member}")
                    continue
                staged = Path(tmp) / name
                staged.write_bytes(zf.read(member))
                staged.chmod(0o755)
                os.replace(staged, bin_dir / name)
    return bin_dir / "uv"


def install_with_venv(version: str, dest: Path) -> Path:
    venv = dest / "venv"
    shutil.rmtree(venv, ignore_errors=True)
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.PIPE}
    made = subprocess.run([sys.executable, "-m", "venv", str(venv)], **quiet, check=False)
    python = venv / "bin" / "python"
    if made.returncode != 0 or not python.exists():
        shutil.rmtree(venv, ignore_errors=True)
        raise BootstrapError("this Python cannot make a virtual environment with pip")
    pip = subprocess.run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            f"uv=={version}",
        ],
        **quiet,
        check=False,
    )
    if pip.returncode != 0:
        shutil.rmtree(venv, ignore_errors=True)
        lines = pip.stderr.decode(errors="replace").strip().splitlines()
        raise BootstrapError(f"pip could not install uv: {lines[-1] if lines else pip.returncode}")
    target = dest / "bin" / "uv"
    target.parent.mkdir(parents=True, exist_ok=True)
    for name in ("uv", "uvx"):
        link = dest / "bin" / name
        link.unlink(missing_ok=True)
        link.symlink_to(Path("..") / "venv" / "bin" / name)
    return target


def works(uv: Path) -> bool:
    try:
        return (
            subprocess.run([str(uv), "--version"], capture_output=True, check=False).returncode == 0
        )
    except OSError:
        return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--version", required=True, help="the uv version to install")
    parser.add_argument("--dest", type=Path, required=True, help="folder for bin/uv")
    parser.add_argument("--method", choices=("auto", "venv", "index"), default="auto")
    args = parser.parse_args(argv)
    dest: Path = args.dest.resolve()
    reasons: list[str] = []
    methods = ("index", "venv") if args.method == "auto" else (args.method,)
    for method in methods:
        try:
            if method == "venv":
                uv = install_with_venv(args.version, dest)
            else:
                uv = install_from_index(args.version, dest / "bin")
        except BootstrapError as exc:
            reasons.append(f"{method}: {exc}")
            continue
        if works(uv):
            print(f"bootstrap: uv {args.version} installed at {uv} ({method})")
            return 0
        reasons.append(f"{method}: the installed {uv} does not run")
    print(f"bootstrap: could not install uv {args.version} — {'; '.join(reasons)}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
