"""Secrets, paths and modes: a canary key that must leak nowhere, names that never become
paths, partition keys that are validated, files without world access."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import dagster as dg
import pytest

from fakes.faultserver import FaultServer, Reply
from fakes.payloads import body, volume
from pipelines import redaction
from pipelines.assets.ingestion import build_ingestion_assets
from pipelines.lake import DataDir
from pipelines.partitions import key_for_instant, snapshot_partitions, window_for_key
from pipelines.resources import LakeStore, VolumeApi
from pipelines.warehouse import build_warehouse
from simulator import DEFAULT_START
from tests.reliability import harness as h
from tests.reliability.score import record

CANARY = h.CANARY
PARTITIONS = snapshot_partitions(60)
ASSETS = build_ingestion_assets(PARTITIONS)
AT = DEFAULT_START + timedelta(days=3, minutes=5)


def materialize(url, data_dir, at, instance, assets=ASSETS, **api):
    api.setdefault("max_attempts", 2)
    return dg.materialize(
        assets,
        partition_key=key_for_instant(PARTITIONS, at),
        instance=instance,
        resources={
            "volume_api": VolumeApi(base_url=url, token=CANARY, backoff_base=0.01, **api),
            "lake": LakeStore(data_dir=str(data_dir)),
        },
        raise_on_error=False,
    )


def event_text(instance: dg.DagsterInstance) -> str:
    """Every stored event of every run, as text (messages, metadata, errors)."""
    chunks = []
    for run in instance.get_runs():
        chunks.append(repr(run))
        for entry in instance.all_logs(run.run_id):
            chunks.append(repr(entry))
    return "\n".join(chunks)


@pytest.fixture
def home(tmp_path):
    path = tmp_path / "dagster_home"
    path.mkdir()
    with dg.instance_for_test(temp_dir=str(path)) as instance:
        yield path, instance


def test_the_canary_key_leaks_nowhere_on_success_or_failure(
    tmp_path, home, simulator, capfd, caplog
):
    """Success, 401, a cross-origin redirect, a 5xx run, an HTML 200 and a code path that logs
    the key on purpose: the key appears in no output, log, event, file name or file."""
    caplog.set_level(logging.DEBUG)
    home_dir, instance = home
    data_dir = tmp_path / "data"
    sim = simulator(volumes=150, seed=3, token=CANARY)
    sim.set_clock(AT)
    outcomes = {"success": materialize(sim.url, data_dir, AT, instance).success}

    @dg.asset(name="careless", partitions_def=PARTITIONS)
    def careless(context, volume_api: VolumeApi) -> None:
        """Logs the key, as a careless change might."""
        context.log.warning(f"calling with Bearer {volume_api.token} and key={volume_api.token}")
        logging.getLogger("pipelines.careless").warning("key %s", volume_api.token)
        with redaction.scrubbed_errors():  # as the ingestion assets do
            raise RuntimeError(f"failed with key {volume_api.token}")

    outcomes["careless"] = not materialize(
        sim.url, data_dir, AT, instance, assets=[careless]
    ).success
    now = datetime.now(UTC)
    with FaultServer([Reply(status=200, body=body([volume(1)]))], host="127.0.0.2") as elsewhere:
        faults = {
            "401": [Reply(401, b'{"error": "unauthorized"}')],
            "redirect": [Reply(302, b"", {"Location": f"{elsewhere.url}/v1/volumes"})],
            "5xx": [Reply(503, b"down")],
            "html": [Reply(body=b"<html>login</html>", headers={"Content-Type": "text/html"})],
        }
        for name, replies in faults.items():
            with FaultServer(replies) as srv:
                outcomes[name] = not materialize(srv.url, data_dir, now, instance).success
    assert elsewhere.seen == []  # the other origin never heard from us
    assert all(outcomes.values()), outcomes
    captured = capfd.readouterr()
    hits = h.scan_for(CANARY, data_dir, home_dir)
    places = {
        "stdout/stderr": captured.out + captured.err,
        "python logs": caplog.text,
        "dagster events": event_text(instance),
    }
    hits += [where for where, text in places.items() if CANARY in text]
    record(
        "secrets (canary)", injected=len(outcomes), survived=len(outcomes), canary_hits=len(hits)
    )
    assert hits == []
    assert "[REDACTED]" in places["dagster events"]  # the careless asset was caught, not silent


def test_the_cli_never_prints_or_stores_the_key(tmp_path, simulator):
    sim = simulator(volumes=50, seed=4, token="another-key")  # our canary is refused: 401
    sim.set_clock(datetime.now(UTC))
    home = tmp_path / "home"
    home.mkdir()
    env = {
        **os.environ,
        "VOLCAP_API_URL": sim.url,
        "VOLCAP_API_TOKEN": CANARY,
        "VOLCAP_DATA_DIR": str(tmp_path / "data"),
        "DAGSTER_HOME": str(home),
    }
    run = subprocess.run(
        [sys.executable, "-m", "pipelines.cli", "ingest"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 1
    assert run.stderr.count("\n") == 1 and "HTTP 401" in run.stderr
    hits = h.scan_for(CANARY, tmp_path) + [s for s in (run.stdout, run.stderr) if CANARY in s]
    record("secrets (CLI 401)", injected=1, survived=1, canary_hits=len(hits))
    assert hits == []


def test_redaction_is_installed_and_http_debug_logs_are_off(tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    redaction.register_secret(CANARY)
    redaction.install()
    assert logging.getLogger("httpx").getEffectiveLevel() >= logging.WARNING
    assert logging.getLogger("httpcore").getEffectiveLevel() >= logging.WARNING
    logging.getLogger("pipelines.anything").error("Authorization: Bearer %s", "sk-other-1234")
    logging.getLogger("elsewhere").error("key=%s", CANARY)
    assert CANARY not in caplog.text and "sk-other-1234" not in caplog.text
    assert caplog.text.count("[REDACTED]") == 2


def test_volume_names_and_ids_never_become_paths(tmp_path):
    hostile = [
        volume(1, id="../../../escape", name="../../etc/passwd"),
        volume(2, id="a/b/c", name="/absolute/name"),
        volume(3, id="..", name="..\\..\\windows"),
    ]
    now = datetime.now(UTC)
    data_dir = tmp_path / "data"
    with FaultServer([Reply(body=body(hostile), date=format_datetime(now, usegmt=True))]) as srv:
        h.ingest(srv.url, data_dir, now)
    found = h.audit(data_dir)
    assert found.clean and found.outside == []
    outside = sorted(p.name for p in tmp_path.iterdir())
    assert outside == ["data"]
    for path in data_dir.rglob("*"):
        assert "escape" not in str(path) and "passwd" not in str(path)
    assert h.files_in(data_dir / "lake") == [
        f"volume_snapshots/snapshot_date={now:%Y-%m-%d}/{now:%Y%m%dT%H}00Z.parquet"
    ]


@pytest.mark.parametrize(
    "key",
    ["../../etc", "2025-01-01-00:00/../x", "2025-01-01-00:00\x00", "", "2025-13-01-00:00"],
)
def test_partition_keys_are_validated(key):
    with pytest.raises(Exception):  # noqa: B017 - dagster raises its own error types
        window_for_key(PARTITIONS, key)


def test_files_are_created_without_world_access_whatever_the_umask(tmp_path, simulator):
    sim = simulator(volumes=60, seed=5, token=CANARY)
    sim.set_clock(AT)
    previous = os.umask(0)
    try:
        data_dir = tmp_path / "data"
        h.ingest(sim.url, data_dir, AT)
        build_warehouse(data_dir)
    finally:
        os.umask(previous)
    found = h.audit(data_dir)
    assert found.world_accessible == []
    assert DataDir.at(data_dir).root.stat().st_mode & 0o007 == 0
