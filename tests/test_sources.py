"""Several fleets in one deployment: a sources file, one run per source, `source` in every key.

Each source is a real simulator on loopback. Two started with the same seed serve the same
volume ids, which is exactly why `source` is part of every key.
"""

from __future__ import annotations

import re
import subprocess
import textwrap
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import duckdb
import polars as pl
import pytest

from pipelines.compaction import compact_lake, compacted_name, day_folder
from pipelines.lake import DataDir
from pipelines.report import load
from pipelines.sources import (
    DEFAULT,
    DEFAULT_SOURCE,
    Source,
    SourcesError,
    file_suffix,
    keyed_by_source,
    load_sources,
    source_of_file,
)
from pipelines.warehouse import PUBLIC_TABLES, build_warehouse
from simulator import DEFAULT_START
from tests.lakegen import END, Volume, snapshots, write_lake
from tests.reliability import harness as h
from tests.test_cli import volcap as run_cli

EU_KEY = "canary-eu-west-5d1c7a"
US_KEY = "canary-us-east-90be44"
AT = DEFAULT_START + timedelta(days=2, hours=4, minutes=10)
DAY = f"{AT:%Y-%m-%d}"
SLUG = f"{AT:%Y%m%dT%H}00Z"


def volcap(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """The CLI as a user runs it (tests.test_cli), with room for one run per source."""
    return run_cli(*args, env=env, timeout=300)


def sources_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "sources.toml"
    path.write_text(textwrap.dedent(text))
    return path


def fleet_env(tmp_path: Path, sources: Path, **keys: str) -> dict[str, str]:
    home = tmp_path / "dagster_home"
    home.mkdir(exist_ok=True)
    env = {
        "VOLCAP_SOURCES": str(sources),
        "VOLCAP_DATA_DIR": str(tmp_path / "data"),
        "DAGSTER_HOME": str(home),
        **keys,
    }
    # the single-source variables play no part in a deployment with a sources file
    return {**env, "VOLCAP_API_URL": "", "VOLCAP_API_TOKEN": ""}


def lake_files(data_dir: Path) -> list[str]:
    return h.files_in(data_dir / "lake" / "volume_snapshots")


# -- (a) two fleets whose volume ids collide ---------------------------------------------------


def test_two_sources_land_side_by_side_and_every_table_is_keyed_by_source(tmp_path, simulator):
    eu = simulator(volumes=120, seed=3, token=EU_KEY)
    us = simulator(volumes=120, seed=3, token=US_KEY)  # same seed: the same volume ids
    for sim in (eu, us):
        sim.set_clock(AT)
    config = sources_file(
        tmp_path,
        f"""
        [[sources]]
        name = "eu-west"
        url = "{eu.url}"
        token_env = "VOLCAP_TOKEN_EU_WEST"

        [[sources]]
        name = "us-east"
        url = "{us.url}"
        token_env = "VOLCAP_TOKEN_US_EAST"
        """,
    )
    env = fleet_env(tmp_path, config, VOLCAP_TOKEN_EU_WEST=EU_KEY, VOLCAP_TOKEN_US_EAST=US_KEY)
    data_dir = tmp_path / "data"

    ingest = volcap("ingest", "--at", AT.isoformat(), env=env)
    assert ingest.returncode == 0, ingest.stderr
    assert ingest.stdout.count("\n") == 1 and "eu-west" in ingest.stdout
    # the lake path is the published one; the source is in the file name and in a column
    assert lake_files(data_dir) == [
        f"snapshot_date={DAY}/{SLUG}.eu-west.parquet",
        f"snapshot_date={DAY}/{SLUG}.us-east.parquet",
    ]
    for name in ("eu-west", "us-east"):
        frame = pl.read_parquet(
            data_dir / "lake/volume_snapshots" / f"snapshot_date={DAY}" / f"{SLUG}.{name}.parquet"
        )
        assert frame["source"].unique().to_list() == [name]
        assert (
            data_dir / "raw/volume_snapshots" / f"source={name}" / f"snapshot_date={DAY}"
        ).is_dir()

    build = volcap("build", env=env)
    assert build.returncode == 0, build.stderr
    with duckdb.connect(str(data_dir / "warehouse.duckdb"), read_only=True) as con:
        ids, keys, rows = con.execute(
            "select count(distinct volume_id), count(distinct (source, volume_id)), count(*) "
            "from volumes"
        ).fetchone()
        assert (ids, keys, rows) == (120, 240, 240)
        assert con.execute(
            "select source, day, volumes from fleet_daily order by source"
        ).fetchall() == [("eu-west", AT.date(), 120), ("us-east", AT.date(), 120)]
        without = con.execute(
            """
            select table_name from information_schema.tables
            where table_schema = 'main' and table_name in (select unnest($tables))
                and table_name not in (
                    select table_name from information_schema.columns where column_name = 'source'
                )
            """,
            {"tables": list(PUBLIC_TABLES)},
        ).fetchall()
        # fleet_forecast is the whole deployment's line: every source added up, by design
        assert without == [("fleet_forecast",)]
        assert con.execute(
            "select count(*) from information_schema.tables where table_name in (select unnest($t))",
            {"t": list(PUBLIC_TABLES)},
        ).fetchone() == (len(PUBLIC_TABLES),)

    # the report's fleet totals add up the fleets
    report = load(data_dir)
    assert report.sources == ["eu-west", "us-east"]
    assert report.latest_day["volumes"] == 240

    # (d) neither key is anywhere: files under the data dir, the Dagster home (its event log
    # and run storage), or the output
    for key in (EU_KEY, US_KEY):
        assert h.scan_for(key, data_dir, tmp_path / "dagster_home") == []
        assert key not in ingest.stdout + ingest.stderr + build.stdout + build.stderr
        assert key not in config.read_text()


def test_one_source_is_snapshotted_alone_with_source(tmp_path, simulator):
    eu = simulator(volumes=40, seed=5, token=EU_KEY)
    eu.set_clock(AT)
    config = sources_file(
        tmp_path,
        f"""
        [[sources]]
        name = "eu-west"
        url = "{eu.url}"
        token_env = "KEY_EU"

        [[sources]]
        name = "unreachable"
        url = "http://127.0.0.1:9"
        token_env = "KEY_OTHER"
        """,
    )
    env = fleet_env(tmp_path, config, KEY_EU=EU_KEY, KEY_OTHER="x" * 8)
    alone = volcap("ingest", "--at", AT.isoformat(), "--source", "eu-west", env=env)
    assert alone.returncode == 0, alone.stderr
    assert lake_files(tmp_path / "data") == [f"snapshot_date={DAY}/{SLUG}.eu-west.parquet"]
    unknown = volcap("ingest", "--source", "nowhere", env=env)
    assert unknown.returncode == 1
    assert unknown.stderr.count("\n") == 1 and "unknown source 'nowhere'" in unknown.stderr


# -- (b) a failing source does not block the others --------------------------------------------


def test_a_failing_source_fails_alone_and_leaves_nothing_in_the_lake(tmp_path, simulator):
    healthy = simulator(volumes=80, seed=4, token=EU_KEY)
    refusing = simulator(volumes=80, seed=4, token="the-right-key")  # our key gets a 401
    for sim in (healthy, refusing):
        sim.set_clock(AT)
    config = sources_file(
        tmp_path,
        f"""
        [[sources]]
        name = "default"
        url = "{healthy.url}"
        token_env = "KEY_DEFAULT"

        [[sources]]
        name = "broken"
        url = "{refusing.url}"
        token_env = "KEY_BROKEN"
        """,
    )
    env = fleet_env(tmp_path, config, KEY_DEFAULT=EU_KEY, KEY_BROKEN=US_KEY)
    data_dir = tmp_path / "data"
    run = volcap("ingest", "--at", AT.isoformat(), env=env)
    assert run.returncode == 1
    assert run.stderr.count("\n") == 1
    assert "broken" in run.stderr and "HTTP 401" in run.stderr and "landed: default" in run.stderr
    # the default source keeps its original file name; the broken one left nothing behind
    assert lake_files(data_dir) == [f"snapshot_date={DAY}/{SLUG}.parquet"]
    assert (
        not (data_dir / "raw/volume_snapshots/source=broken").exists()
        or h.files_in(data_dir / "raw/volume_snapshots/source=broken") == []
    )
    assert not (data_dir / "quarantine").exists()
    for key in (EU_KEY, US_KEY):
        assert h.scan_for(key, data_dir, tmp_path / "dagster_home") == []
        assert key not in run.stdout + run.stderr


# -- (c) configuration errors are one line ------------------------------------------------------

GOOD = 'name = "eu-west"\nurl = "https://eu.example"\ntoken_env = "KEY_EU"\n'


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        pytest.param(
            '[[sources]]\nname = "EU West"\nurl = "https://x"\ntoken_env = "K"',
            "name 'EU West' must match",
            id="bad-name",
        ),
        pytest.param(
            f"[[sources]]\n{GOOD}[[sources]]\n{GOOD}",
            "duplicate source name 'eu-west'",
            id="duplicate",
        ),
        pytest.param('[[sources]]\nname = "eu"\ntoken_env = "K"', "missing url", id="missing-url"),
        pytest.param(
            '[[sources]]\nname = "eu"\nurl = "https://x"',
            "missing token_env",
            id="missing-token-env",
        ),
        pytest.param(
            '[[sources]]\nname = "eu"\nurl = "https://x"\ntoken_env = "K"\ntoken = "sk-1"',
            "a key does not belong in the file",
            id="key-in-file",
        ),
        pytest.param(
            '[[sources]]\nname = "eu"\nurl = "ftp://x"\ntoken_env = "K"',
            "url must start with https://",
            id="not-http",
        ),
        pytest.param("title = 'nothing'", "has no [[sources]] entries", id="empty"),
        pytest.param("[[sources]\n", "is not valid TOML", id="not-toml"),
    ],
)
def test_config_errors_name_the_problem_in_one_line(tmp_path, text, reason):
    path = tmp_path / "sources.toml"
    path.write_text(text)
    with pytest.raises(SourcesError) as error:
        load_sources(path)
    assert reason in str(error.value) and "\n" not in str(error.value)


def test_a_missing_sources_file_is_one_line_from_the_cli(tmp_path):
    run = volcap("ingest", env=fleet_env(tmp_path, tmp_path / "absent.toml"))
    assert run.returncode == 1
    assert run.stderr.count("\n") == 1 and "absent.toml not found" in run.stderr


def test_a_sources_file_reads_names_urls_and_variable_names_only(tmp_path):
    path = sources_file(tmp_path, f"[[sources]]\n{GOOD}")
    assert load_sources(path) == (Source("eu-west", token_env="KEY_EU", url="https://eu.example"),)
    assert DEFAULT.url_env == "VOLCAP_API_URL" and DEFAULT.token_env == "VOLCAP_API_TOKEN"


# -- the layout: the default source keeps every path --------------------------------------------


def test_the_default_source_keeps_every_path_and_another_source_is_named_in_files(tmp_path):
    at = datetime(2026, 11, 27, 4, tzinfo=UTC)
    default, eu = DataDir.at(tmp_path), DataDir.at(tmp_path).for_source("eu-west")
    day = "snapshot_date=2026-11-27"
    assert (
        default.lake_file(at) == tmp_path / "lake/volume_snapshots" / day / "20261127T0400Z.parquet"
    )
    assert (
        eu.lake_file(at)
        == tmp_path / "lake/volume_snapshots" / day / "20261127T0400Z.eu-west.parquet"
    )
    assert (
        default.raw_sidecar(at)
        == tmp_path / "raw/volume_snapshots" / day / "20261127T0400Z.meta.json"
    )
    assert (
        eu.raw_sidecar(at)
        == tmp_path / "raw/volume_snapshots/source=eu-west" / day / "20261127T0400Z.meta.json"
    )
    assert eu.quarantine_file(at).parent.parent.name == "source=eu-west"
    assert compacted_name(at.date()) == "day-2026-11-27.parquet"
    assert compacted_name(at.date(), "eu-west") == "day-2026-11-27.eu-west.parquet"
    with pytest.raises(ValueError):
        default.for_source("../escape")


# -- (e) compaction keeps sources apart -----------------------------------------------------------


def test_compaction_writes_one_file_per_source_and_day_and_keeps_rows_distinct(tmp_path):
    fleet = [Volume("a"), Volume("b")]  # the same ids in both fleets
    default = snapshots(fleet, hours=48)
    eu = snapshots(fleet, hours=48, source="eu-west")
    write_lake(tmp_path, default)
    write_lake(tmp_path, eu)
    data = DataDir.at(tmp_path)
    done = compact_lake(data, now=END)
    closed = date(2026, 3, 1)
    assert {(c.day, c.source) for c in done} >= {(closed, "default"), (closed, "eu-west")}
    names = sorted(p.name for p in day_folder(data, closed).glob("*.parquet"))
    assert names == ["day-2026-03-01.eu-west.parquet", "day-2026-03-01.parquet"]
    for name, source in zip(names, ["eu-west", "default"], strict=True):
        rows = pl.read_parquet(day_folder(data, closed) / name)
        assert rows["source"].unique().to_list() == [source]
        assert rows.height == 2 * 24
    build_warehouse(tmp_path)
    with duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True) as con:
        assert con.execute(
            "select count(*), count(distinct (source, volume_id, snapshot_at)) from volume_snapshots"
        ).fetchone() == (2 * default.height, 2 * default.height)


def test_lake_files_written_before_sources_existed_read_as_the_default_source(tmp_path):
    frame = snapshots([Volume("a")], hours=30)
    write_lake(tmp_path, frame.drop("source"))
    build_warehouse(tmp_path)
    compact_lake(DataDir.at(tmp_path), now=END)
    with duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True) as con:
        assert con.execute("select distinct source from volume_snapshots").fetchall() == [
            ("default",)
        ]
    [compacted] = day_folder(DataDir.at(tmp_path), date(2026, 3, 1)).glob("day-*.parquet")
    assert pl.read_parquet(compacted)["source"].unique().to_list() == ["default"]


def test_each_schedule_tick_requests_one_run_per_source(tmp_path, monkeypatch):
    import dagster as dg

    from pipelines.definitions import build_definitions

    path = sources_file(
        tmp_path,
        """
        [[sources]]
        name = "eu-west"
        url = "http://127.0.0.1:1"
        token_env = "EU_KEY"

        [[sources]]
        name = "us-east"
        url = "http://127.0.0.1:2"
        token_env = "US_KEY"
        """,
    )
    monkeypatch.setenv("VOLCAP_SOURCES", str(path))
    defs = build_definitions()
    schedule = defs.resolve_schedule_def("snapshot_schedule")
    context = dg.build_schedule_context(
        scheduled_execution_time=datetime(2026, 11, 27, 13, 5, tzinfo=UTC),
        repository_def=defs.get_repository_def(),
    )
    requests = list(schedule.evaluate_tick(context).run_requests or [])
    assert sorted(str(r.partition_key) for r in requests) == [
        "eu-west|2026-11-27-13:00",
        "us-east|2026-11-27-13:00",
    ]
    assert len({r.run_key for r in requests}) == 2
    assert sorted(r.tags["volcap/source"] for r in requests) == ["eu-west", "us-east"]


@pytest.mark.parametrize(
    ("name", "source"),
    [
        pytest.param("20261127T0400Z.parquet", "default", id="hourly-default"),
        pytest.param("20261127T0400Z.eu-west.parquet", "eu-west", id="hourly-named"),
        pytest.param("day-2026-11-27.parquet", "default", id="compacted-default"),
        pytest.param("day-2026-11-27.us_east.parquet", "us_east", id="compacted-named"),
        pytest.param("20261127T0400Z.Not-A-Name.parquet", "default", id="not-a-source-name"),
    ],
)
def test_a_lake_file_name_says_its_source_and_the_default_source_adds_nothing(name, source):
    """Files written before sources existed carry no source in their names: the default's."""
    assert source_of_file(name) == source
    stem = name.removesuffix(".parquet").removesuffix(file_suffix(source))
    assert stem + file_suffix(source) + ".parquet" == name
    assert (file_suffix(source) == "") == (source == DEFAULT_SOURCE)


def test_only_the_default_source_alone_keeps_plain_time_partition_keys():
    assert not keyed_by_source([DEFAULT_SOURCE])
    assert keyed_by_source(["eu-west"]) and keyed_by_source([DEFAULT_SOURCE, "eu-west"])


def test_the_default_source_is_named_in_pipelines_sources_alone():
    """The compatibility case has one owner: code and SQL take its name from there."""
    root = Path(__file__).resolve().parents[1]
    quoted = re.compile(r"""["']default["']""")
    spelled = sorted(
        str(path.relative_to(root))
        for folder in ("pipelines", "sql")
        for path in (root / folder).rglob("*")
        if path.suffix in (".py", ".sql")
        and path.name != "sources.py"
        and quoted.search(path.read_text())
    )
    assert spelled == []
