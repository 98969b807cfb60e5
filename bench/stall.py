"""How long a silent peer holds `volcap ingest`: the whole process against a server that sends
the headers and half the body, then keeps the connection open without a byte more.

Only the API URL, key and data dir are set, so the figure is the default configuration's.
Run: `uv run python -m bench.stall` (add `--env VOLCAP_STALL_TIMEOUT_SECONDS=5` to try others).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from fakes.faultserver import FaultServer, Reply
from fakes.payloads import body, volume

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "bench-token"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--env", action="append", default=[], metavar="NAME=VALUE", help="extra environment"
    )
    args = parser.parse_args()
    extra = dict(item.split("=", 1) for item in args.env)
    stalled = Reply(body=body([volume(i) for i in range(1, 201)]), mode="stall")
    with tempfile.TemporaryDirectory() as tmp, FaultServer([stalled]) as srv:
        env = {k: v for k, v in os.environ.items() if not k.startswith("VOLCAP_")}
        env.update(
            VOLCAP_API_URL=srv.url,
            VOLCAP_API_TOKEN=TOKEN,
            VOLCAP_DATA_DIR=str(Path(tmp) / "data"),
            **extra,
        )
        started = time.monotonic()
        done = subprocess.run(
            [sys.executable, "-m", "pipelines.cli", "ingest"],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        )
        wall = time.monotonic() - started
        requests = len(srv.seen)
    print(f"stalled peer: exit {done.returncode} after {wall:.1f}s, {requests} requests")
    print(done.stderr.strip() or done.stdout.strip())


if __name__ == "__main__":
    main()
