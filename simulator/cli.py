"""`python -m simulator` / `volcap simulate`: serve a simulated fleet on loopback."""

from __future__ import annotations

import argparse
import errno
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import NoReturn

from simulator.clock import parse_instant
from simulator.render import LAYOUT_STYLES
from simulator.server import DEFAULT_START, DEFAULT_TOKEN, serve


def _start(text: str) -> datetime:
    """An ISO instant, or `now` (the wall clock, whole seconds) for a fleet that runs in real time."""
    if text == "now":
        return datetime.now(UTC).replace(microsecond=0)
    try:
        return parse_instant(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an instant; expected ISO 8601 such as 2025-01-06T00:00:00Z, or now"
        ) from None


class OneLineParser(argparse.ArgumentParser):
    """Usage mistakes in one line (argparse prints the whole usage first), exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser(prog: str = "volcap simulate") -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog=prog, description=__doc__, formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument("--host", default="127.0.0.1", help="the address to listen on")
    parser.add_argument("--port", type=int, default=8080, help="0 picks a free port")
    parser.add_argument("--volumes", type=int, default=2_000, help="volumes existing at --start")
    parser.add_argument("--seed", type=int, default=0, help="the fleet is deterministic from it")
    parser.add_argument("--token", default=DEFAULT_TOKEN, help="the accepted bearer token")
    parser.add_argument("--start", type=_start, default=DEFAULT_START,
                        help="simulated start instant (ISO 8601), or `now`")  # fmt: skip
    parser.add_argument(
        "--speed",
        type=float,
        default=0.0,
        help="simulated seconds per real second; 0 = manual clock (POST /_sim/clock)",
    )
    parser.add_argument(
        "--layout",
        choices=LAYOUT_STYLES,
        default="compact",
        help="whitespace of the /v1/volumes body: compact [{...},{...}], spaced (', ' and ': ', "
        "as Python's json.dumps), pretty (indent 2); POST /_sim/layout changes it while serving",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        _serve(args)
    except OSError as exc:  # the port is taken, or the host is not ours: one line, no traceback
        what = "is in use" if exc.errno == errno.EADDRINUSE else f"cannot be bound ({exc.strerror})"
        print(
            f"{parser.prog}: error: --host {args.host} --port {args.port} {what}; "
            "expected a free port (--port 0 picks one)",
            file=sys.stderr,
        )
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


def _serve(args: argparse.Namespace) -> None:
    serve(
        volumes=args.volumes,
        seed=args.seed,
        token=args.token,
        start=args.start,
        host=args.host,
        port=args.port,
        speed=args.speed,
        layout=args.layout,
        ready=lambda line: print(line, flush=True),
    )


if __name__ == "__main__":
    sys.exit(main())
