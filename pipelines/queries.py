"""Named read queries: one `sql/<folder>/<name>.sql` per query, run by name with its parameters.

The report and the demo's summary read the warehouse only through these files, so the SQL a
reader may want sits in `sql/` beside the models, and Python only renders what they return.
Each file opens with a header comment (what a row is, what it reads, `-- parameters:`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from itertools import takewhile
from pathlib import Path
from typing import Any

import duckdb

from pipelines.models import SQL_DIR, parameters_of

#: The report's queries (the HTML report and the demo's terminal summary).
REPORT = "report"
#: The data-quality checks' queries: the rows that break check <name> (pipelines/warehouse/checks.py).
CHECKS = "checks"

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_DECLARED = re.compile(r"^--\s*parameters:(.*)$", re.MULTILINE)


@dataclass(frozen=True)
class Query:
    """One named query: `sql` from `path`, binding `parameters` by name."""

    name: str
    path: Path
    sql: str
    parameters: tuple[str, ...]


def load_queries(folder: str, sql_dir: Path = SQL_DIR) -> dict[str, Query]:
    """Every query in `sql_dir/folder`, keyed by file stem; a file whose header does not
    declare the parameters it uses is refused."""
    found: dict[str, Query] = {}
    for path in sorted((sql_dir / folder).glob("*.sql")):
        if not _NAME.match(path.stem):
            raise ValueError(f"query file name is not a plain identifier: {path}")
        text = path.read_text()
        header = "\n".join(takewhile(lambda line: line.startswith("--"), text.splitlines()))
        declared = _DECLARED.search(header)
        if not header or declared is None:
            raise ValueError(f"query {path} has no header comment with a `-- parameters:` line")
        used = parameters_of(text)
        undeclared = [p for p in used if f"${p}" not in header[declared.start() :]]
        if undeclared:
            raise ValueError(f"query {path} uses undeclared parameters: {undeclared}")
        found[path.stem] = Query(name=path.stem, path=path, sql=text, parameters=used)
    return found


@cache
def queries(folder: str) -> dict[str, Query]:
    """The project's queries in `sql/<folder>` (cached: the files do not change while running)."""
    return load_queries(folder)


def execute(
    con: duckdb.DuckDBPyConnection, folder: str, name: str, **params: Any
) -> duckdb.DuckDBPyConnection:
    """Run query `name` of `folder`, binding exactly the parameters it uses."""
    query = queries(folder)[name]
    if set(params) != set(query.parameters):
        raise ValueError(
            f"query {name} takes {sorted(query.parameters)}, was given {sorted(params)}"
        )
    return con.execute(query.sql, params or None)


def rows(
    con: duckdb.DuckDBPyConnection, folder: str, name: str, **params: Any
) -> list[dict[str, Any]]:
    """Query `name`'s rows as dicts, column name -> value."""
    cursor = execute(con, folder, name, **params)
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def one(con: duckdb.DuckDBPyConnection, folder: str, name: str, **params: Any) -> dict[str, Any]:
    """The single row of query `name` (one that aggregates the whole warehouse)."""
    (row,) = rows(con, folder, name, **params)
    return row
