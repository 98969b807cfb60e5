"""`python -m simulator` / `volcap simulate`: serve a simulated fleet on loopback."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from datetime import UTC, datetime

from simulator.clock import iso, parse_instant
from simulator.server import DEFAULT_START, DEFAULT_TOKEN, serve


def _start(text: str) -> datetime:
    """An ISO instant, or `now` (the wall clock, whole seconds) for a fleet that runs in real time."""
    if text == "now":
        return datetime.now(UTC).replace(microsecond=0)
    return parse_instant(text)


def build_parser(prog: str = "volcap simulate") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080, help="0 picks a free port")
    parser.add_argument("--volumes", type=int, default=2_000, help="volumes existing at --start")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--token", default=DEFAULT_TOKEN, help="the accepted bearer token")
    parser.add_argument("--start", type=_start, default=DEFAULT_START,
                        help=f"simulated start instant, or `now` (default {iso(DEFAULT_START)})")  # fmt: skip
    parser.add_argument(
        "--speed",
        type=float,
        default=0.0,
        help="simulated seconds per real second; 0 = manual clock (POST /_sim/clock)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    serve(
        volumes=args.volumes,
        seed=args.seed,
        token=args.token,
        start=args.start,
        host=args.host,
        port=args.port,
        speed=args.speed,
        ready=lambda line: print(line, flush=True),
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
