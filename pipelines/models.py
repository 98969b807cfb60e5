"""SQL model discovery: one model per `sql/<layer>/<name>.sql`, dependencies read from the SQL."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cache
from graphlib import TopologicalSorter
from itertools import takewhile
from pathlib import Path

SQL_DIR = Path(__file__).resolve().parent.parent / "sql"
#: The folders of `sql/` that hold models; the others hold named queries (pipelines/queries.py).
MODEL_LAYERS: tuple[str, ...] = ("staging", "marts")

#: Relations the engine derives from a model and keeps up to date with it: a model reading
#: one depends on that model.
DERIVED: dict[str, str] = {
    "volume_observation_steps": "volume_observations",
    # the replay reads volume_observations and, through quota_forecast's SQL, the moments
    "volcap_replay": "forecast_day_moments",
}
#: Derived relations made with another model's SQL and parameters (pipelines/replay.py): a
#: model reading one depends on that model's parameters too (`bound_parameters`).
MADE_WITH: dict[str, str] = {"volcap_replay": "quota_forecast"}
#: Relations the engine provides before any model runs (not models themselves).
SOURCES: frozenset[str] = frozenset(
    {
        "lake_volume_snapshots",
        "previous_quota_forecast_history",
        "volume_observations_before",
        *DERIVED,
    }
)

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_LINE_COMMENT = re.compile(r"--[^\n]*")
_BLOCK_COMMENT = re.compile(r"/\*.*?\*/", re.DOTALL)
_RELATION = re.compile(r"\b(?:from|join)\s+([a-z_][a-z0-9_]*)", re.IGNORECASE)
_PARAMETER = re.compile(r"\$([a-z_][a-z0-9_]*)")
#: `-- incremental: <column>` in a model's header: an incremental build deletes the rows whose
#: <column> falls on or after $since and inserts what the model returns for those days.
#: `-- incremental: append`: the model reads its own earlier rows as `previous_<name>`; an
#: incremental build keeps the table, drops the rows the model would not keep of it (by `as_of`,
#: see `pipelines/warehouse/incremental.py`) and inserts the model's rows for this build.
#: `-- incremental: <column> after $since`: rows keyed by an instant that reads only the days
#: before it (a backtest origin at 00:00 UTC): the rows at $since's 00:00 stand, and only those
#: after it are deleted and inserted anew (the model selects `<column> > $since`).
_INCREMENTAL = re.compile(
    r"^--\s*incremental:\s*([a-z_][a-z0-9_]*)\b(\s+after\s+\$since\b)?", re.MULTILINE
)
APPEND = "append"
#: `-- incremental also replaces: <relation>`: an incremental build also deletes the rows whose
#: grain key is in <relation> (a source the engine provides), for the model to insert them anew.
_ALSO_REPLACES = re.compile(
    r"^--\s*incremental also replaces:\s*([a-z_][a-z0-9_]*)\b", re.MULTILINE
)
#: `-- incremental keeps: <condition>`: an incremental build also deletes the rows failing
#: <condition> (one line of SQL over the table's columns, the build's parameters and the models
#: the model depends on), so rows that left a window the model keeps (say, the latest N origins)
#: go as a full build would leave them out.
_KEEPS = re.compile(r"^--\s*incremental keeps:\s*(.+?)\s*$", re.MULTILINE)
#: `-- incremental updates: <column> = <expression>`: an incremental build sets <column> of the
#: rows it keeps to <expression> (one line of SQL over the build's parameters): a column that is
#: the build's instant on every row, so the kept rows need not be written anew.
_UPDATES = re.compile(
    r"^--\s*incremental updates:\s*([a-z_][a-z0-9_]*)\s*=\s*(.+?)\s*$", re.MULTILINE
)
#: `-- incremental full when: <condition> -- <reason>`: after the models run, an incremental
#: build evaluates <condition> (one line of SQL over the build's parameters, the tables and
#: `copy_of_<model>`, that model's table as the build's copy held it before any model ran) and
#: falls back to a full build, saying <reason>, when it holds: a change the model's kept rows
#: cannot follow (say, an origin that entered its window before the first changed day).
_FULL_WHEN = re.compile(r"^--\s*incremental full when:\s*(.+?)\s+--\s+(.+?)\s*$", re.MULTILINE)
#: the relations a `full when` condition reads as the copy held them
COPY_OF = re.compile(r"\bcopy_of_([a-z_][a-z0-9_]*)\b")
#: `-- grain: (a, b, …)`: the columns that identify a row.
_GRAIN = re.compile(r"^--\s*grain:\s*\(([a-z0-9_, ]+)\)", re.MULTILINE)
#: `-- columns:` (or `-- columns: those of <model> (<note>), and:`) opens the column dictionary
#: of a model's header: one `--   name: meaning` line per column, continued on lines indented
#: deeper. It is the single source of the catalog's comments and of the README's data model.
_COLUMNS = re.compile(r"^columns:(?:\s*those of ([a-z_][a-z0-9_]*) \((.*)\), and:)?\s*$")
_COLUMN = re.compile(r"^ {2,3}([a-z_][a-z0-9_]*): (.+)$")
#: a header line that starts a key (`grain:`, `depends on:` …) ends the model's summary
_KEY_LINE = re.compile(
    r"^(?:grain|depends on|parameters|incremental|incremental also replaces|incremental keeps"
    r"|incremental updates|incremental full when|materialized|columns):"
)
#: `-- materialized: view` in a model's header: the build declares a view instead of a table
#: (its parameters are written into the view as literals).
_MATERIALIZED = re.compile(r"^--\s*materialized:\s*(table|view)\b", re.MULTILINE)


@dataclass(frozen=True)
class Model:
    """One SQL model: the table `name` is built from `sql` in layer `layer`."""

    name: str
    layer: str
    path: Path
    sql: str
    description: str
    deps: tuple[str, ...]
    sources: tuple[str, ...]
    parameters: tuple[str, ...]
    #: the column an incremental build replaces rows by (from $since on); None: rebuilt whole
    incremental: str | None = None
    #: `-- incremental: <column> after $since`: rows at $since's 00:00 stand (see _INCREMENTAL)
    incremental_after: bool = False
    #: `-- incremental: append`: an incremental build appends this build's rows (see APPEND)
    append: bool = False
    #: a relation whose rows' grain keys an incremental build also replaces
    also_replaces: str | None = None
    #: a condition an incremental build deletes the rows failing (`-- incremental keeps:`)
    keeps: str | None = None
    #: (condition, reason): an incremental build that finds <condition> true after the models
    #: ran is done again as a full one (`-- incremental full when:`)
    full_when: tuple[tuple[str, str], ...] = ()
    #: (column, expression) an incremental build sets on the rows it keeps
    updates: tuple[str, str] | None = None
    #: the columns that identify a row, from `-- grain: (…)` (empty when not a column list)
    grain: tuple[str, ...] = ()
    #: the header's first paragraph: what a row is (the table's comment in the catalog)
    summary: str = ""
    #: the header's column dictionary, name -> meaning, in the header's order
    columns: dict[str, str] = field(default_factory=dict)
    #: (model, note) when the header says the table also has the columns of another model
    columns_of: tuple[str, str] | None = None
    #: "table", or "view": declared, not computed, by every build
    materialized: str = "table"


def _header(text: str) -> str:
    lines = []
    for line in text.splitlines():
        if not line.startswith("--"):
            break
        lines.append(line[2:].strip())
    return "\n".join(lines).strip()


def _dictionary(header: str) -> tuple[str, dict[str, str], tuple[str, str] | None]:
    """The header's summary, its column dictionary and the model whose columns it inherits."""
    lines = [line[2:].rstrip() for line in header.splitlines()]
    summary: list[str] = []
    for line in lines:
        if _KEY_LINE.match(line.strip()):
            break
        summary.append(line.strip())
    columns: dict[str, str] = {}
    inherits = None
    start = next((i for i, line in enumerate(lines) if _COLUMNS.match(line.strip())), None)
    if start is not None:
        opened = _COLUMNS.match(lines[start].strip())
        assert opened is not None
        if opened.group(1):
            inherits = (opened.group(1), opened.group(2))
        current = None
        for line in lines[start + 1 :]:
            column = _COLUMN.match(line)
            if column:
                current = column.group(1)
                columns[current] = column.group(2).strip()
            elif current and line.startswith("     "):
                columns[current] += " " + line.strip()
            else:
                break
    return " ".join(summary), columns, inherits


def _strip_comments(sql: str) -> str:
    return _LINE_COMMENT.sub("", _BLOCK_COMMENT.sub("", sql))


def parameters_of(sql: str) -> tuple[str, ...]:
    """The named parameters (`$name`) a statement uses, comments apart, sorted."""
    return tuple(sorted(set(_PARAMETER.findall(_strip_comments(sql)))))


def load_models(sql_dir: Path = SQL_DIR) -> dict[str, Model]:
    """Every model under `sql_dir`'s model layers, keyed by name, in dependency order."""
    paths = sorted(path for layer in MODEL_LAYERS for path in sql_dir.glob(f"{layer}/*.sql"))
    names = {p.stem for p in paths}
    models: dict[str, Model] = {}
    for path in paths:
        if not _NAME.match(path.stem):
            raise ValueError(f"model file name is not a plain identifier: {path}")
        text = path.read_text()
        body = _strip_comments(text)
        relations = {m.lower() for m in _RELATION.findall(body)}
        header = "\n".join(takewhile(lambda line: line.startswith("--"), text.splitlines()))
        incremental = _INCREMENTAL.search(header)
        append = bool(incremental and incremental.group(1) == APPEND)
        if append:
            incremental = None
        also_replaces = _ALSO_REPLACES.search(header)
        keeps = _KEEPS.search(header)
        updates = _UPDATES.search(header)
        full_when = tuple((match.group(1), match.group(2)) for match in _FULL_WHEN.finditer(header))
        grain = _GRAIN.search(header)
        summary, columns, columns_of = _dictionary(header)
        materialized = _MATERIALIZED.search(header)
        models[path.stem] = Model(
            name=path.stem,
            layer=path.parent.name,
            path=path,
            sql=text,
            description=_header(text),
            deps=tuple(
                sorted(
                    ((relations & names) | {DERIVED[r] for r in relations & DERIVED.keys()})
                    - {path.stem}
                )
            ),
            sources=tuple(sorted(relations & SOURCES)),
            parameters=parameters_of(text),
            keeps=keeps.group(1) if keeps else None,
            updates=(updates.group(1), updates.group(2)) if updates else None,
            full_when=full_when,
            incremental=incremental.group(1) if incremental else None,
            incremental_after=bool(incremental and incremental.group(2)),
            append=append,
            also_replaces=also_replaces.group(1) if also_replaces else None,
            grain=tuple(c.strip() for c in grain.group(1).split(",")) if grain else (),
            summary=summary,
            columns=columns,
            columns_of=columns_of,
            materialized=materialized.group(1) if materialized else "table",
        )
        if incremental and materialized and materialized.group(1) == "view":
            raise ValueError(f"a view cannot be incremental: {path}")
        if incremental and "since" not in models[path.stem].parameters:
            raise ValueError(f"incremental model {path} does not use $since")
        if append and f"previous_{path.stem}" not in relations:
            raise ValueError(f"append model {path} does not read previous_{path.stem}")
        if (keeps or updates or full_when) and not incremental:
            raise ValueError(f"{path} keeps rows but has no incremental column")
        if also_replaces and (not incremental or not models[path.stem].grain):
            raise ValueError(f"{path} also replaces rows but has no incremental column or grain")
    order = TopologicalSorter({m.name: set(m.deps) for m in models.values()})
    return {name: models[name] for name in order.static_order()}


@cache
def models() -> dict[str, Model]:
    """The project's models (cached: the files do not change while the process runs)."""
    return load_models()


def bound_parameters(name: str, every: dict[str, Model] | None = None) -> frozenset[str]:
    """The parameters a model's rows depend on: its own, and those of the models (and of the
    relations made with a model, MADE_WITH) it reads, transitively. An incremental build
    rebuilds an incremental model whole when one of these changed since the previous build."""
    every = every if every is not None else models()
    seen: set[str] = set()
    todo = [name]
    bound: set[str] = set()
    while todo:
        current = todo.pop()
        if current in seen or current not in every:
            continue
        seen.add(current)
        model = every[current]
        bound.update(model.parameters)
        if model.keeps:
            bound.update(parameters_of(model.keeps))
        if model.updates:
            bound.update(parameters_of(model.updates[1]))
        for condition, _ in model.full_when:
            bound.update(parameters_of(condition))
        todo.extend(model.deps)
        todo.extend(MADE_WITH[source] for source in model.sources if source in MADE_WITH)
    return frozenset(bound)
