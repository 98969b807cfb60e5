"""The `volcap` command: ingest, build, compact, report, demo, simulate.

Every command prints one summary line on success and exits 0; on failure it prints one line
with the reason to stderr and exits non-zero.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import NoReturn

EXIT_FAILURE = 1


def _parse_instant(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 instant: {text!r}") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


class IngestFailed(RuntimeError):
    """Some sources did not land; the message names them and their reasons."""


def _check_at(at: datetime) -> None:
    """`--at` must name a partition that exists on this machine's clock."""
    from pipelines import config, settings

    cadence = config.cadence_minutes()
    step = cadence * 60
    now = datetime.now(UTC)
    current_start = datetime.fromtimestamp(now.timestamp() // step * step, UTC)
    first = datetime.strptime(settings.PARTITIONS_START, "%Y-%m-%d-%H:%M").replace(tzinfo=UTC)
    if at >= current_start + timedelta(minutes=cadence):
        raise config.ConfigError(
            f"--at {at:%Y-%m-%dT%H:%M:%SZ} is in this machine's future (now "
            f"{now:%Y-%m-%dT%H:%M:%SZ}); expected an instant up to the current "
            f"{cadence}-minute window, which starts {current_start:%Y-%m-%dT%H:%MZ}"
        )
    if at < first:
        raise config.ConfigError(
            f"--at {at:%Y-%m-%dT%H:%M:%SZ} is before the first partition "
            f"({first:%Y-%m-%dT%H:%MZ}); expected a later instant"
        )


def cmd_ingest(args: argparse.Namespace) -> str:
    from pipelines import config

    started = time.monotonic()
    configured = [source.name for source in config.check_ingest()]
    at = args.at or datetime.now(UTC)
    _check_at(at)
    if args.source is not None and args.source not in configured:
        raise IngestFailed(f"unknown source {args.source!r} (configured: {', '.join(configured)})")

    from pipelines.runner import run_snapshot, run_snapshots
    from pipelines.sources import keyed_by_source

    if keyed_by_source(configured):
        sources = [args.source] if args.source else configured
        result = run_snapshots(at, sources)
        landed = ", ".join(
            f"{o.source} {o.rows} volumes ({o.quarantined} quarantined)" for o in result.landed
        )
        if result.failed:
            reasons = "; ".join(f"{name}: {why}" for name, why in result.failed.items())
            raise IngestFailed(
                f"{len(result.failed)} of {len(sources)} sources failed "
                f"({', '.join(result.failed)}) — {reasons}"
                + (f"; landed: {landed}" if landed else "")
            )
        window = result.landed[0].window_key
        fetched = sum(o.bytes_fetched for o in result.landed)
        return (
            f"ingested partition {window} from {len(sources)} sources: {landed}"
            f" ({fetched / 1e6:.1f} MB fetched) in {time.monotonic() - started:.1f}s"
        )
    outcome = run_snapshot(at)
    return (
        f"ingested {outcome.rows} volumes for partition {outcome.partition_key} → {outcome.path}"
        f" ({outcome.quarantined} quarantined, {outcome.bytes_fetched / 1e6:.1f} MB fetched)"
        f" in {time.monotonic() - started:.1f}s"
    )


def cmd_build(args: argparse.Namespace) -> str:
    from pipelines import config

    config.check_local()
    started = time.monotonic()
    if not config.dagster_home():
        # No instance would record the run: build without loading Dagster, whose imports and
        # run set-up cost more than an incremental build. (The asset checks run only in
        # recorded runs, where their results are kept.)
        from pipelines.layout import resolve_layout
        from pipelines.warehouse import build_summary, build_warehouse

        layout = resolve_layout()
        result = build_warehouse(layout.root, full=args.full, remote=layout.remote)
        line = build_summary(result.rows, result.critical, result.warning)
        return f"{line} in {time.monotonic() - started:.1f}s"
    from pipelines.runner import run_build

    outcome = run_build(full=args.full)
    return f"{outcome.summary} in {time.monotonic() - started:.1f}s"


def cmd_compact(args: argparse.Namespace) -> str:
    """What the `compact_lake` asset does (the daily `compaction_schedule`), for cron users."""
    from pipelines import config

    config.check_local()
    from pipelines.compaction import compact_lake
    from pipelines.resources import resolve_layout

    started = time.monotonic()
    done = compact_lake(resolve_layout())
    seconds = time.monotonic() - started
    if not done:
        return (
            f"nothing to compact: every closed day is already one file per source ({seconds:.1f}s)"
        )
    days = sorted({c.day for c in done})
    return (
        f"compacted {len(days)} day(s) ({days[0]} to {days[-1]}): "
        f"{sum(c.files_in for c in done)} files into {len(done)}, "
        f"{sum(c.bytes_in for c in done) / 1e6:.1f} MB into "
        f"{sum(c.bytes_out for c in done) / 1e6:.1f} MB, in {seconds:.1f}s"
    )


def cmd_report(args: argparse.Namespace) -> str:
    from pipelines import config

    config.check_local()
    from pipelines.runner import run_report

    outcome = run_report()
    empty = ": no volumes yet" if outcome.no_volumes_yet else ""
    return f"report written to {outcome.path}{empty}"


def cmd_demo(args: argparse.Namespace) -> str:
    from pipelines.demo import run_demo

    return run_demo(days=args.days, volumes=args.volumes, seed=args.seed)


class OneLineParser(argparse.ArgumentParser):
    """Usage mistakes in one line (argparse prints the whole usage first), exit status 2.
    (The simulator has its own: the pipeline never imports it.)"""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="volcap",
        description="Capacity history and quota forecasts for a storage platform's volumes. "
        "Configured by VOLCAP_API_URL, VOLCAP_API_TOKEN and VOLCAP_DATA_DIR (or VOLCAP_SOURCES, "
        "a file listing several fleets).",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    ingest = sub.add_parser("ingest", help="take one snapshot of the volumes API into the lake")
    ingest.add_argument(
        "--at",
        type=_parse_instant,
        help="an instant inside the partition to materialize (default: now); the API's clock "
        "must be inside that partition's window",
    )
    ingest.add_argument(
        "--source",
        metavar="NAME",
        help="snapshot only this source of the sources file (default: every source)",
    )
    ingest.set_defaults(func=cmd_ingest)

    build = sub.add_parser("build", help="build the warehouse models from the lake")
    build.add_argument("--full", action="store_true", help="rebuild everything from the lake")
    build.set_defaults(func=cmd_build)

    compact = sub.add_parser(
        "compact",
        help="rewrite each closed day of the lake as one sorted file (what compaction_schedule "
        "runs daily; idempotent)",
    )
    compact.set_defaults(func=cmd_compact)

    report = sub.add_parser("report", help="write the HTML capacity report")
    report.set_defaults(func=cmd_report)

    demo = sub.add_parser(
        "demo",
        help="run the whole pipeline on the fleet simulator",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    demo.add_argument("--days", type=int, default=30, help="simulated days of hourly snapshots")
    demo.add_argument("--volumes", type=int, default=2000, help="volumes in the simulated fleet")
    demo.add_argument("--seed", type=int, default=7, help="the simulated fleet's seed")
    demo.set_defaults(func=cmd_demo)

    simulate = sub.add_parser(
        "simulate",
        help="serve the fleet simulator on loopback (`volcap simulate --help` for its options)",
        add_help=False,
    )
    simulate.set_defaults(func=None)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["simulate"]:  # the simulator parses its own options
        from simulator.cli import main as simulate_main

        return simulate_main(argv[1:])
    import logging

    from pipelines import config  # noqa: F401  (registers the variables holding keys for redaction)
    from pipelines.redaction import install

    # One line on success or failure: progress and retry warnings go to Dagster's event log.
    logging.basicConfig(level=logging.ERROR, format="volcap: %(levelname)s %(message)s")
    install()
    args = build_parser().parse_args(argv)
    try:
        line = args.func(args)
    except KeyboardInterrupt:
        print("volcap: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # one line, never a traceback, for any failure
        from pipelines.redaction import redact

        print(f"volcap {args.command}: error: {redact(_one_line(exc))}", file=sys.stderr)
        return EXIT_FAILURE
    if line:
        print(line)
    return 0


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return " ".join(text.split())


if __name__ == "__main__":
    sys.exit(main())
