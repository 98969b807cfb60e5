"""The warehouse: SQL models built from the lake into a DuckDB file, verified, published.

A full build runs every model from the whole lake. An incremental build starts from a copy of
the published warehouse, replaces the rows of the day-grained models from the first changed
day on (found by comparing the lake's files with the manifest the last build stored) and
rebuilds the other models whole; anything it cannot vouch for falls back to a full build.

One concern per module: `lake_view` (the lake as a source), `engine` (build and publish),
`incremental` (what an incremental build replaces), `params` (forecast parameters), `checks`
(data-quality checks), `published` (reading the published warehouse), `schema` (relations),
`errors`. Where files live is `pipelines.lake.DataDir`'s. The names below are the package's
interface.
"""

from pipelines.warehouse.checks import (
    NO_VOLUMES_YET,
    CheckOutcome,
    check_forecast_sanity,
    check_fresh,
    check_no_missing_snapshots,
    check_non_negative,
    check_row_count_stable,
    check_unique_snapshots,
    violations,
)
from pipelines.warehouse.engine import (
    STORAGE_COMPATIBILITY,
    BuildResult,
    build_summary,
    build_warehouse,
    run_model,
)
from pipelines.warehouse.errors import BuildError, EmptyLakeError
from pipelines.warehouse.incremental import ENGINE_VERSION, STEPS_NAME, STEPS_TABLE
from pipelines.warehouse.lake_view import LAKE_LINKS_GRACE, create_lake_view
from pipelines.warehouse.params import ForecastParams, steps_horizon
from pipelines.warehouse.published import connect_published
from pipelines.warehouse.schema import (
    BUILD_SCHEMA,
    DAY_EXPORTS,
    EPOCH,
    EXPORTED_TABLES,
    INFO_TABLE,
    MANIFEST_TABLE,
    PUBLIC_TABLES,
    RETIRED_EXPORTS,
    STAGING_SCHEMA,
    qualified,
    schema_of,
)

__all__ = [
    "BUILD_SCHEMA",
    "DAY_EXPORTS",
    "ENGINE_VERSION",
    "EPOCH",
    "EXPORTED_TABLES",
    "INFO_TABLE",
    "LAKE_LINKS_GRACE",
    "MANIFEST_TABLE",
    "NO_VOLUMES_YET",
    "PUBLIC_TABLES",
    "RETIRED_EXPORTS",
    "STAGING_SCHEMA",
    "STEPS_NAME",
    "STEPS_TABLE",
    "STORAGE_COMPATIBILITY",
    "BuildError",
    "BuildResult",
    "CheckOutcome",
    "EmptyLakeError",
    "ForecastParams",
    "build_summary",
    "build_warehouse",
    "check_forecast_sanity",
    "check_fresh",
    "check_no_missing_snapshots",
    "check_non_negative",
    "check_row_count_stable",
    "check_unique_snapshots",
    "connect_published",
    "create_lake_view",
    "qualified",
    "run_model",
    "schema_of",
    "steps_horizon",
    "violations",
]
