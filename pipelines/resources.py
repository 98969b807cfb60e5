"""Resources for everything external, built in one place from `VOLCAP_*` environment variables."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from pipelines import config, redaction, settings
from pipelines.api import ApiError, FetchResult, VolumesClient
from pipelines.contract import API_FIELDS
from pipelines.lake import DataDir
from pipelines.layout import resolve_data_dir, resolve_layout
from pipelines.sources import DEFAULT, Source, only_default


class VolumeApi(dg.ConfigurableResource):
    """The volumes API as Dagster configures it: `client()` builds the plain
    `pipelines.api.VolumesClient` from these values (defaults and meanings are the client's),
    and the key is registered for redaction before a run uses it."""

    base_url: str
    token: str
    token_env: str = VolumesClient.token_env
    connect_timeout: float = VolumesClient.connect_timeout
    stall_timeout: float = VolumesClient.stall_timeout
    write_timeout: float = VolumesClient.write_timeout
    pool_timeout: float = VolumesClient.pool_timeout
    fetch_deadline: float = VolumesClient.fetch_deadline
    max_attempts: int = VolumesClient.max_attempts
    backoff_base: float = VolumesClient.backoff_base
    backoff_max: float = VolumesClient.backoff_max
    retry_after_cap: float = VolumesClient.retry_after_cap
    max_body_bytes: int = VolumesClient.max_body_bytes
    verify_tls: bool = VolumesClient.verify_tls

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        redaction.register_secret(self.token)
        redaction.install()

    def client(self) -> VolumesClient:
        return VolumesClient(**{name: getattr(self, name) for name in type(self).model_fields})

    def fetch_to(self, dest: Path, fields: tuple[str, ...] = API_FIELDS) -> FetchResult:
        return self.client().fetch_to(dest, fields)


class LakeStore(dg.ConfigurableResource):
    """The data dir: raw landing, lake, quarantine, warehouse and marts live under it.
    Empty `data_dir` means `$VOLCAP_DATA_DIR` (default ./data), read at run time."""

    data_dir: str = ""
    #: A snapshot with more than this share of rows quarantined fails.
    max_quarantine_share: float = settings.MAX_QUARANTINE_SHARE
    #: A snapshot with fewer volumes than this share of the median of the last
    #: `volume_median_window` landed snapshots fails (0 disables the rule; at least three
    #: earlier snapshots are needed before it applies).
    min_volume_share: float = settings.MIN_VOLUME_SHARE
    volume_median_window: int = settings.VOLUME_MEDIAN_WINDOW

    @property
    def layout(self) -> DataDir:
        return resolve_layout(self.data_dir)


class WarehouseResource(dg.ConfigurableResource):
    """Where the lake and the warehouse live, and the snapshot cadence. Empty `data_dir` means
    `$VOLCAP_DATA_DIR` (default ./data), read at run time."""

    data_dir: str = ""
    cadence_minutes: int = settings.DEFAULT_CADENCE_MINUTES

    @property
    def path(self) -> Path:
        """The (local) data directory as a Path."""
        return resolve_data_dir(self.data_dir)

    @property
    def layout(self) -> DataDir:
        """The data dir's layout, with its object-store mirror if it has one."""
        return resolve_layout(self.data_dir)


def configured_sources() -> tuple[Source, ...]:
    """The sources file named by `VOLCAP_SOURCES`, else the default source alone."""
    return config.sources()


def source_api(template: VolumeApi, source: Source) -> VolumeApi:
    """The API resource for one source: the template's limits and timeouts with the source's
    URL and key. The key is read from the source's variable now, at run time, and registered
    for redaction; the default source without a sources file is the template itself."""
    if source == DEFAULT:
        return template
    token = config.secret(source.token_env)
    if not token:
        raise ApiError(f"source {source.name}: environment variable {source.token_env} is empty")
    redaction.register_secret(token)
    redaction.install()
    limits = {
        name: getattr(template, name)
        for name in VolumeApi.model_fields
        if name not in ("base_url", "token", "token_env")
    }
    return VolumeApi(**limits, base_url=source.url, token=token, token_env=source.token_env)


def build_resources(sources: tuple[Source, ...] = (DEFAULT,)) -> dict[str, object]:
    """Every resource, configured from the environment (values resolve at run time, so the
    key never appears in run config, the UI or the event log); the fetch deadline and stall
    timeout come from `pipelines.config`. With a sources file,
    `volume_api` only carries the limits: each source's URL and key come from the file and its
    variable (`source_api`)."""
    deadline, stall = config.fetch_deadline_seconds(), config.stall_timeout_seconds()
    if only_default(sources):
        api = VolumeApi(
            base_url=dg.EnvVar("VOLCAP_API_URL"),
            token=dg.EnvVar("VOLCAP_API_TOKEN"),
            fetch_deadline=deadline,
            stall_timeout=stall,
        )
    else:
        api = VolumeApi(base_url="", token="", fetch_deadline=deadline, stall_timeout=stall)
    return {
        "volume_api": api,
        "lake": LakeStore(),
        "warehouse": WarehouseResource(cadence_minutes=cadence_minutes()),
    }


def local_resources(
    data_dir: str | Path, *, api_url: str = "", api_token: str = ""
) -> dict[str, object]:
    """Every resource bound to arguments instead of the environment, for in-process runs that
    bring their own data dir and API (the demo's simulator). The API resource is handed over as
    built, not as configuration: Dagster records a configurable resource's values in the run's
    job snapshot, and a key must not land there."""
    template = build_resources()["volume_api"]
    assert isinstance(template, VolumeApi)
    limits = {
        name: getattr(template, name)
        for name in VolumeApi.model_fields
        if name not in ("base_url", "token", "token_env")
    }
    if api_token:
        redaction.register_secret(api_token)
        redaction.install()
    api = VolumeApi(**limits, base_url=api_url, token=api_token)
    return {
        "volume_api": dg.ResourceDefinition.hardcoded_resource(api),
        "lake": LakeStore(data_dir=str(data_dir)),
        "warehouse": WarehouseResource(data_dir=str(data_dir), cadence_minutes=cadence_minutes()),
    }


def cadence_minutes() -> int:
    """Snapshot cadence from `VOLCAP_CADENCE_MINUTES` (default hourly), validated."""
    return config.cadence_minutes()


def schedules_on_by_default() -> bool:
    """Schedules start RUNNING only where an API is configured: after `make demo` the simulator
    is gone, and `make dev` should not try to snapshot it every hour."""
    return config.api_configured()
