"""The warehouse's catalog: table and column descriptions, single-sourced from the SQL headers.

Each model's header carries its summary (first paragraph) and a `-- columns:` dictionary
(pipelines/models.py parses both). A build writes them into the catalog with COMMENT ON, so BI
tools and `describe` show them; the README's data model is rendered from the same text
(`python -m pipelines.catalog` rewrites it, `--check` fails when it is stale; a test runs the
check).
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence
from pathlib import Path

import duckdb

from pipelines.models import Model, models

README = Path(__file__).resolve().parent.parent / "README.md"
_LAKE_START, _LAKE_END = "<!-- lake-columns:start -->", "<!-- lake-columns:end -->"
_TABLES_START, _TABLES_END = "<!-- warehouse-tables:start -->", "<!-- warehouse-tables:end -->"
#: how the lake's types read in the README (Parquet readers see the same)
_LAKE_TYPE_NAMES = {
    "VARCHAR": "string",
    "BIGINT": "int64",
    "INTEGER": "int32",
    "TIMESTAMPTZ": "timestamp UTC",
}


def column_comments(name: str) -> dict[str, str]:
    """Every documented column of model `name`, inherited ones first, name -> meaning."""
    model = models()[name]
    inherited: dict[str, str] = {}
    if model.columns_of is not None:
        inherited = column_comments(model.columns_of[0])
    return {**inherited, **model.columns}


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def apply_comments(con: duckdb.DuckDBPyConnection, tables: tuple[str, ...]) -> list[str]:
    """COMMENT ON every table in `tables` and each of its columns the dictionary describes.

    Returns the columns the dictionary misses (`table.column`): the build still publishes, and
    tests/test_catalog.py fails on any.
    """
    missing = []
    for table in tables:
        model = models()[table]
        described = column_comments(table)
        con.execute(f'comment on table "{table}" is {_quote(model.summary)}')
        for (column,) in con.execute(
            "select column_name from duckdb_columns() where database_name = current_database() "
            "and schema_name = 'main' and table_name = ? order by column_index",
            [table],
        ).fetchall():
            if column in described:
                con.execute(
                    f'comment on column "{table}"."{column}" is {_quote(described[column])}'
                )
            else:
                missing.append(f"{table}.{column}")
    return missing


def _table(rows: Sequence[tuple[str, ...]], header: tuple[str, ...]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cells) + " |" for cells in rows]
    return lines


def render_lake_columns() -> str:
    """The lake's column table: type from the contract, meaning from volume_snapshots' header."""
    from pipelines.lake_types import LAKE_DUCKDB_TYPES

    described = column_comments("volume_snapshots")
    rows = [
        (f"`{column}`", _LAKE_TYPE_NAMES.get(kind, kind.lower()), described.get(column, ""))
        for column, kind in LAKE_DUCKDB_TYPES.items()
    ]
    return "\n".join(_table(rows, ("column", "type", "meaning")))


def _model_section(model: Model, public: bool) -> list[str]:
    grain = re.search(r"^-- grain: (.*)$", model.sql, re.MULTILINE)
    title = f"**`{model.name}`**" + (
        "" if public else " (schema `staging`: a build input, not for dashboards)"
    )
    lines = [f"{title} — {model.summary}"]
    if grain:
        lines[0] += f" Grain: `{grain.group(1).split(';')[0].strip()}`."
    lines.append("")
    if model.columns_of is not None:
        other, note = model.columns_of
        lines += [f"The columns of `{other}` ({note}), and:", ""]
    rows = [(f"`{column}`", meaning) for column, meaning in model.columns.items()]
    lines += _table(rows, ("column", "meaning"))
    return lines


def render_tables(public: tuple[str, ...]) -> str:
    """The warehouse tables, public ones first in `public` order, then the staging ones."""
    names = [*public, *(name for name in models() if name not in public)]
    lines: list[str] = []
    for name in names:
        if lines:
            lines.append("")
        lines += _model_section(models()[name], name in public)
    return "\n".join(lines)


def _replace_between(text: str, start: str, end: str, body: str) -> str:
    head, found, rest = text.partition(start)
    if not found or end not in rest:
        raise ValueError(f"README has no {start} … {end} section")
    return f"{head}{start}\n{body}\n{end}{rest.partition(end)[2]}"


def rendered_readme(text: str, public: tuple[str, ...]) -> str:
    """`text` (the README) with both generated sections brought up to date."""
    text = _replace_between(text, _LAKE_START, _LAKE_END, render_lake_columns())
    return _replace_between(text, _TABLES_START, _TABLES_END, render_tables(public))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pipelines.catalog",
        description="Render the README's data model from the SQL model headers.",
    )
    parser.add_argument("--check", action="store_true", help="fail if the README is stale")
    args = parser.parse_args(argv)
    from pipelines.warehouse import PUBLIC_TABLES

    current = README.read_text()
    wanted = rendered_readme(current, PUBLIC_TABLES)
    if current == wanted:
        return 0
    if args.check:
        print(
            "README.md's data model differs from the SQL headers: run python -m pipelines.catalog",
            file=sys.stderr,
        )
        return 1
    README.write_text(wanted)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
