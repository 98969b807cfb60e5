"""The capacity report: one self-contained HTML file read from the published warehouse."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from html import escape
from pathlib import Path
from typing import Any

import duckdb

from pipelines import charts, publish, settings
from pipelines.sources import DEFAULT_SOURCE
from pipelines.warehouse import INFO_TABLE, connect_published

REPORTS_DIR = "reports"
REPORT_FILE = "capacity.html"
CHART_FILE = "fleet_capacity.svg"
#: How far ahead the fleet forecast is drawn, and its interval coverage.
FORECAST_DAYS = 30
Z_80 = 1.2815515655446004

STATUS_COLORS = {
    "attached": charts.PALETTE[0],
    "available": charts.PALETTE[2],
    "degraded": charts.PALETTE[1],
    "error": charts.PALETTE[3],
    "other": charts.PALETTE[4],
}


# -- formatting for people ------------------------------------------------------------------


def human_bytes(value: float | None) -> str:
    """1536 → '1.5 KiB'; None → '—'."""
    if value is None or not math.isfinite(value):
        return "—"
    sign = "-" if value < 0 else ""
    value = abs(float(value))
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if value < 1024 or unit == "PiB":
            return f"{sign}{value:.0f} {unit}" if unit == "B" else f"{sign}{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def human_count(value: float | None) -> str:
    """1234567 → '1.23M'; None → '—'."""
    if value is None or not math.isfinite(value):
        return "—"
    for size, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= size:
            return f"{value / size:.3g}{suffix}"
    return f"{value:,.0f}"


def human_days(value: float | None) -> str:
    """3.2 → '3.2 days'; 0.2 → '5 h'; None → '—'."""
    if value is None or not math.isfinite(value):
        return "—"
    if value == 0:
        return "now"
    if value < 1:
        return f"{value * 24:.0f} h"
    return f"{value:.1f} days" if value < 100 else f"{value:,.0f} days"


def human_date(value: datetime | None, *, with_time: bool = False) -> str:
    if value is None:
        return "—"
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC" if with_time else "%Y-%m-%d")


def human_amount(resource: str, value: float | None) -> str:
    """A quantity of `resource` (bytes, inodes or mounts); None quota means unlimited."""
    if resource == "bytes" or resource == "max_size_bytes":
        return human_bytes(value)
    return human_count(value)


def percent(value: float | None) -> str:
    return "—" if value is None or not math.isfinite(value) else f"{value:.0%}"


def anchor(volume_id: str) -> str:
    """The fragment id of a volume's row in the report."""
    return "volume-" + "".join(c if c.isalnum() or c in "-_" else "_" for c in volume_id)


# -- data -----------------------------------------------------------------------------------


@dataclass
class FleetForecast:
    """OLS on end-of-day fleet usage with an 80% prediction interval."""

    growth_per_day: float
    points: list[tuple[float, float, float, float]]  # (unix s, point, low, high)


@dataclass
class ReportData:
    generated_at: datetime
    as_of: datetime
    first_snapshot: datetime
    snapshots: int
    fleet_hourly: list[tuple[datetime, float, float]]
    fleet_days: list[dict[str, Any]]
    forecast: FleetForecast | None
    fleet_growth: dict[str, Any]
    risk_counts: dict[str, int]
    state_counts: dict[str, int]
    #: volumes at or over a quota (bytes or inodes), fullest first
    full: list[dict[str, Any]]
    #: the others at risk, soonest to fill first (volume_risk.risk_rank)
    at_risk: list[dict[str, Any]]
    #: volumes that can take no more mounts (a signal, not a risk), and how many there are
    mount_pressure: list[dict[str, Any]]
    mounts_at_limit: int
    sparks: dict[str, list[float | None]]
    leaders: list[dict[str, Any]]
    events: list[dict[str, Any]]
    missing: list[datetime]
    stale: list[dict[str, Any]]
    paths: dict[str, str] = field(default_factory=dict)
    sources: list[str] = field(default_factory=lambda: [DEFAULT_SOURCE])

    @property
    def no_volumes_yet(self) -> bool:
        """Every snapshot so far was valid and listed no volume (a tenant with none yet)."""
        return self.snapshots == 0

    @property
    def latest_day(self) -> dict[str, Any]:
        return self.fleet_days[-1] if self.fleet_days else {}

    @property
    def listed(self) -> set[str]:
        """Keys of the volumes that have a row (and an anchor) in a risk table."""
        return {self.key(r) for r in self.full + self.at_risk}

    def key(self, row: dict[str, Any]) -> str:
        """A volume's identity in the report: its id, prefixed by its source when there are
        several (ids are unique only within a fleet)."""
        if len(self.sources) > 1:
            return f"{row['source']}.{row['volume_id']}"
        return str(row["volume_id"])


def _rows(con: duckdb.DuckDBPyConnection, sql: str, params: Any = None) -> list[dict[str, Any]]:
    cursor = con.execute(sql, params)
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def fleet_forecast(days: list[dict[str, Any]], as_of: datetime) -> FleetForecast | None:
    """Fit used_bytes on the last 30 end-of-day totals; project FORECAST_DAYS ahead."""
    points = [
        ((d["snapshot_at"] - as_of).total_seconds() / 86400.0, float(d["used_bytes"]))
        for d in days[-30:]
        if d["used_bytes"] is not None
    ]
    n = len(points)
    if n < 3:
        return None
    mean_x = sum(x for x, _ in points) / n
    mean_y = sum(y for _, y in points) / n
    sxx = sum((x - mean_x) ** 2 for x, _ in points)
    if sxx == 0:
        return None
    slope = sum((x - mean_x) * (y - mean_y) for x, y in points) / sxx
    intercept = mean_y - slope * mean_x
    residual = sum((y - intercept - slope * x) ** 2 for x, y in points)
    sigma = math.sqrt(residual / (n - 2))
    out = []
    for step in range(FORECAST_DAYS + 1):
        h = float(step)
        spread = Z_80 * sigma * math.sqrt(1 + 1 / n + (h - mean_x) ** 2 / sxx)
        point = intercept + slope * h
        at = (as_of + timedelta(days=h)).timestamp()
        out.append((at, point, point - spread, point + spread))
    return FleetForecast(growth_per_day=slope, points=out)


def load(
    data_dir: Path,
    *,
    cadence_minutes: int = settings.DEFAULT_CADENCE_MINUTES,
    limit: int = 50,
    full_limit: int = 20,
) -> ReportData:
    """Read everything the report shows from the published warehouse (read-only)."""
    with connect_published(data_dir) as con:
        con.execute("set timezone = 'UTC'")
        first, latest, snapshots = con.execute(
            "select min(snapshot_at), max(snapshot_at), count(distinct snapshot_at) from volume_snapshots"
        ).fetchone() or (None, None, 0)
        as_of = latest
        if as_of is None:
            # every snapshot so far listed no volume: the build's as_of is the latest of them
            as_of = (con.execute(f"select max(as_of) from {INFO_TABLE}").fetchone() or (None,))[0]
            if as_of is None:
                raise ValueError("the warehouse has no snapshots yet: run `volcap build` first")
        hourly = con.execute(
            """
            select snapshot_at, sum(used_bytes), sum(max_size_bytes)
            from volume_snapshots group by snapshot_at order by snapshot_at
            """
        ).fetchall()
        sources = [
            r[0] for r in con.execute("select distinct source from volumes order by 1").fetchall()
        ]
        # fleet totals add up the sources (fleet_daily and the fleet trends are per source)
        fleet_days = _rows(
            con,
            """
            select
                day,
                max(snapshot_at) as snapshot_at,
                sum(columns(lambda c: c in (
                    'volumes', 'volumes_available', 'volumes_attached', 'volumes_degraded',
                    'volumes_error', 'volumes_other_status', 'used_bytes', 'inode_count',
                    'bounded_quota_bytes', 'bounded_used_bytes', 'unlimited_volumes',
                    'hosts_diagnostic'
                ))),
                sum(bounded_used_bytes) / nullif(sum(bounded_quota_bytes), 0)
                    as bounded_utilization
            from fleet_daily
            group by day
            order by day
            """,
        )
        growth = _rows(
            con,
            """
            select sum(columns(lambda c: c like '%growth_per_day%')),
                min(observations_30d) as observations_30d
            from capacity_trends where scope = 'fleet'
            having count(*) > 0
            """,
        )
        risk_counts = dict(
            con.execute("select risk, count(*) from volume_risk group by risk").fetchall()
        )
        state_counts = dict(
            con.execute("select state, count(*) from volume_risk group by state").fetchall()
        )
        # one ordering for every at-risk list: volume_risk.risk_rank
        full = _rows(
            con,
            "select * from volume_risk where state = 'full' order by risk_rank limit $limit",
            {"limit": full_limit},
        )
        at_risk = _rows(
            con,
            """
            select * from volume_risk
            where risk <> 'ok' and state <> 'full'
            order by risk_rank
            limit $limit
            """,
            {"limit": limit},
        )
        mount_pressure = _rows(
            con,
            """
            select risk.source, risk.volume_id, risk.name, risk.mount_count, risk.max_mounts,
                risk.mount_pressure, volumes.status, risk.risk
            from volume_risk as risk
            inner join volumes
                on risk.source = volumes.source and risk.volume_id = volumes.volume_id
            where risk.mount_pressure >= 1
            order by risk.max_mounts desc, risk.mount_pressure desc, risk.source, risk.volume_id
            limit $limit
            """,
            {"limit": limit},
        )
        (mounts_at_limit,) = con.execute(
            "select count(*) from volume_risk where mount_pressure >= 1"
        ).fetchone() or (0,)
        ids = [r["volume_id"] for r in full + at_risk]
        keys = [f"{r['source']}\x1f{r['volume_id']}" for r in full + at_risk]
        sparks: dict[str, list[float | None]] = {}
        if ids:
            for source, volume_id, values in con.execute(
                """
                select daily.source, daily.volume_id, list(
                    case risk.binding_resource
                        when 'bytes' then daily.used_bytes_last / nullif(daily.max_size_bytes, 0)
                        else daily.inode_count_last / nullif(daily.max_file_count, 0)
                    end order by daily.day)
                from volume_daily as daily
                inner join volume_risk as risk
                    on daily.source = risk.source and daily.volume_id = risk.volume_id
                where daily.source || chr(31) || daily.volume_id in (select unnest($keys))
                group by daily.source, daily.volume_id
                """,
                {"keys": keys},
            ).fetchall():
                sparks[spark_key({"source": source, "volume_id": volume_id})] = list(values)
        leaders = _rows(
            con,
            """
            select trends.source, trends.volume_id, volumes.name, volumes.used_bytes, volumes.max_size_bytes,
                trends.bytes_growth_per_day_7d, trends.bytes_growth_per_day_30d,
                risk.risk, risk.binding_resource, risk.days_to_full
            from capacity_trends as trends
            inner join volumes
                on trends.source = volumes.source and trends.volume_id = volumes.volume_id
            left join volume_risk as risk
                on trends.source = risk.source and trends.volume_id = risk.volume_id
            where trends.scope = 'volume' and trends.bytes_growth_per_day_7d is not null
            order by trends.bytes_growth_per_day_7d desc, trends.volume_id
            limit 10
            """,
        )
        events = _rows(
            con,
            """
            select events.*, volumes.name
            from quota_events as events
            left join volumes
                on events.source = volumes.source and events.volume_id = volumes.volume_id
            order by events.changed_at desc, events.volume_id, events.limit_name
            limit 20
            """,
        )
        missing = [
            row[0]
            for row in con.execute(
                """
                with expected as (
                    select unnest(generate_series($first, $latest, to_minutes($cadence))) as snapshot_at
                )
                select snapshot_at from expected
                anti join (select distinct snapshot_at from volume_snapshots) using (snapshot_at)
                order by snapshot_at
                """,
                {"first": first, "latest": latest, "cadence": cadence_minutes},
            ).fetchall()
        ]
        stale = _rows(
            con,
            """
            select forecast.volume_id, volumes.name, forecast.resource, volumes.last_reconciled_at
            from quota_forecast as forecast
            inner join volumes
                on forecast.source = volumes.source and forecast.volume_id = volumes.volume_id
            where forecast.state = 'stale'
            order by volumes.last_reconciled_at, forecast.volume_id, forecast.resource
            """,
        )
    return ReportData(
        generated_at=datetime.now(UTC),
        as_of=as_of,
        first_snapshot=first or as_of,
        snapshots=int(snapshots),
        fleet_hourly=[(t, float(u or 0), float(q or 0)) for t, u, q in hourly],
        fleet_days=fleet_days,
        forecast=fleet_forecast(fleet_days, as_of),
        fleet_growth=growth[0] if growth else {},
        risk_counts={str(k): int(v) for k, v in risk_counts.items()},
        state_counts={str(k): int(v) for k, v in state_counts.items()},
        full=full,
        at_risk=at_risk,
        mount_pressure=mount_pressure,
        mounts_at_limit=int(mounts_at_limit),
        sparks=sparks,
        leaders=leaders,
        events=events,
        missing=missing,
        stale=stale,
        sources=sources,
    )


# -- charts ---------------------------------------------------------------------------------


def fleet_capacity_chart(data: ReportData, *, width: int = 900, height: int = 320) -> str:
    """Fleet usage and bounded quota over time, with the 30-day forecast and its 80% interval."""
    used = [(t.timestamp(), u) for t, u, _ in data.fleet_hourly]
    quota = [(t.timestamp(), q) for t, _, q in data.fleet_hourly]
    series = [
        charts.Series("used", used, charts.PALETTE[0]),
        charts.Series("bounded quota", quota, charts.PALETTE[3]),
    ]
    bands = []
    if data.forecast:
        series.append(
            charts.Series(
                "forecast", [(x, p) for x, p, _, _ in data.forecast.points], charts.PALETTE[0], True
            )
        )
        bands.append(
            charts.Band(
                "80% interval",
                [(x, lo, hi) for x, _, lo, hi in data.forecast.points],
                charts.PALETTE[0],
            )
        )
    return charts.line_chart(
        series,
        bands=bands,
        title="Fleet capacity: used bytes and bounded quota, with a 30-day forecast",
        y_format=human_bytes,
        y_from_zero=True,
        width=width,
        height=height,
        marker=(data.as_of.timestamp(), "latest snapshot") if data.fleet_hourly else None,
    )


def fleet_forecast_chart(data: ReportData, *, width: int = 900, height: int = 240) -> str:
    """The last week of fleet usage and the forecast, scaled to them (not from zero): on the
    capacity chart a fleet's 80% interval is a hairline beside its quota."""
    if not data.forecast:
        return ""
    since = data.as_of - timedelta(days=7)
    used = [(t.timestamp(), u) for t, u, _ in data.fleet_hourly if t >= since]
    points = data.forecast.points
    return charts.line_chart(
        [
            charts.Series("used", used, charts.PALETTE[0]),
            charts.Series("forecast", [(x, p) for x, p, _, _ in points], charts.PALETTE[0], True),
        ],
        bands=[charts.Band("80% interval", [(x, lo, hi) for x, _, lo, hi in points])],
        title="Fleet forecast in detail: the last 7 days and the next 30, to scale",
        y_format=human_bytes,
        width=width,
        height=height,
        marker=(data.as_of.timestamp(), "latest snapshot"),
    )


def status_chart(data: ReportData) -> str:
    """Volumes by status at the end of each day."""
    days = [
        datetime(d["day"].year, d["day"].month, d["day"].day, tzinfo=UTC).timestamp()
        for d in data.fleet_days
    ]
    stacks = {
        "attached": [float(d["volumes_attached"]) for d in data.fleet_days],
        "available": [float(d["volumes_available"]) for d in data.fleet_days],
        "degraded": [float(d["volumes_degraded"]) for d in data.fleet_days],
        "error": [float(d["volumes_error"]) for d in data.fleet_days],
        "other": [float(d["volumes_other_status"]) for d in data.fleet_days],
    }
    return charts.stacked_bars(
        days, stacks, title="Volumes by status, end of day", colors=STATUS_COLORS
    )


# -- HTML -----------------------------------------------------------------------------------

CSS = """
:root{--fg:#1d1d1f;--muted:#666;--line:#e5e5e5;--crit:#b00020;--warn:#a65f00;--ok:#1b7f3b}
*{box-sizing:border-box}
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;color:var(--fg);margin:0;background:#fafafa}
header{background:#14213d;color:#fff;padding:20px 32px}
header h1{margin:0;font-size:22px}
header p{margin:4px 0 0;color:#cfd6e6}
nav{padding:8px 32px;background:#fff;border-bottom:1px solid var(--line);position:sticky;top:0}
nav a{margin-right:16px;color:#14213d;text-decoration:none}
main{padding:0 32px 48px;max-width:1280px}
section{background:#fff;border:1px solid var(--line);border-radius:8px;padding:16px 20px;margin:20px 0;overflow-x:auto}
h2{font-size:18px;margin:0 0 8px}
.cards{display:flex;gap:16px;flex-wrap:wrap;margin:20px 0 0}
.card{background:#fff;border:1px solid var(--line);border-radius:8px;padding:12px 16px;min-width:170px}
.card b{display:block;font-size:22px}
.card span{color:var(--muted)}
table{border-collapse:collapse;width:100%;font-variant-numeric:tabular-nums}
th,td{text-align:left;padding:4px 6px;white-space:nowrap;border-bottom:1px solid var(--line);vertical-align:middle}
th{font-weight:600;color:var(--muted);font-size:12px;text-transform:uppercase;letter-spacing:.03em}
td.num,th.num{text-align:right}
tr:target{background:#fff6cc}
.risk{font-weight:600;border-radius:4px;padding:1px 6px}
.risk-critical{color:#fff;background:var(--crit)}
.risk-warning{color:#fff;background:var(--warn)}
.risk-ok{color:var(--ok)}
.muted{color:var(--muted)}
.name{max-width:180px;overflow:hidden;text-overflow:ellipsis;white-space:nowrap}
.small{font-size:12px;font-weight:normal;text-transform:none;letter-spacing:0}
code{font-size:12px}
svg.chart{max-width:100%;height:auto}
"""


def _risk(risk: str | None) -> str:
    risk = risk or "ok"
    return f'<span class="risk risk-{escape(risk)}">{escape(risk)}</span>'


def spark_key(row: dict[str, Any]) -> str:
    return f"{row['source']}\x1f{row['volume_id']}"


def _volume_cell(volume_id: str, name: str | None, *, linked: bool, key: str = "") -> str:
    label = f'<div class="name" title="{escape(name or "")}">{escape(name or "")}</div>'
    ident = f"<code>{escape(volume_id)}</code>"
    if linked:
        ident = f'<a href="#{anchor(key or volume_id)}">{ident}</a>'
    return f"<td>{label}{ident}</td>"


def _interval(low: float | None, high: float | None) -> str:
    if low is None and high is None:
        return "—"
    if low == high:
        return human_days(low)
    return f"{human_days(low)} – {human_days(high) if high is not None else 'no bound'}"


def _cards(data: ReportData) -> str:
    day = data.latest_day
    growth = data.fleet_growth.get("bytes_growth_per_day_7d")
    first_used = data.fleet_days[0]["used_bytes"] if data.fleet_days else None
    change = (day.get("used_bytes") or 0) - (first_used or 0)
    cards = [
        (f"{day.get('volumes', 0):,}", "volumes in the latest snapshot"),
        (human_bytes(day.get("used_bytes")), "used"),
        (
            human_bytes(day.get("bounded_quota_bytes")),
            f"bounded quota ({percent(day.get('bounded_utilization'))} used)",
        ),
        (f"{human_bytes(growth)}/day", "fleet growth, last 7 days"),
        (human_bytes(change), f"growth since {human_date(data.first_snapshot)}"),
        (f"{data.state_counts.get('full', 0):,}", "already full"),
        (f"{data.risk_counts.get('critical', 0):,}", "critical (full within 7 days)"),
        (f"{data.risk_counts.get('warning', 0):,}", "warning (full within 30 days)"),
    ]
    return (
        '<div class="cards">'
        + "".join(
            f'<div class="card"><b>{escape(v)}</b><span>{escape(k)}</span></div>' for v, k in cards
        )
        + "</div>"
    )


def _used_of_quota(resource: str, current: float | None, quota: float | None) -> str:
    limit = human_amount(resource, quota) if quota is not None else "unlimited"
    return f"{human_amount(resource, current)} / {limit}"


def _risk_rows(data: ReportData, rows: list[dict[str, Any]], *, days: bool) -> str:
    out = []
    for r in rows:
        resource = r["binding_resource"]
        cells = [
            f"<td>{escape(r['source'])}</td>" if len(data.sources) > 1 else "",
            _volume_cell(r["volume_id"], r["name"], linked=True, key=data.key(r)),
            f"<td>{escape(resource)}</td>",
            f'<td class="num">{escape(_used_of_quota(resource, r["current"], r["quota"]))}</td>',
            f'<td class="num">{percent(r["utilization"])}</td>',
            f"<td>{charts.sparkline(data.sparks.get(spark_key(r), []))}</td>",
        ]
        if days:
            interval = _interval(r["days_to_full_low"], r["days_to_full_high"])
            cells += [
                f'<td class="num">{escape(human_days(r["days_to_full"]))}'
                f'<div class="muted small">{escape(interval)}</div></td>',
                f"<td>{escape(human_date(r['full_at']))}</td>",
                f"<td>{escape(r['state'])}</td>",
            ]
        cells.append(f"<td>{_risk(r['risk'])}</td>")
        out.append(f'<tr id="{anchor(data.key(r))}">' + "".join(cells) + "</tr>")
    return "".join(out)


def _risk_head(data: ReportData, *, days: bool) -> str:
    return (
        "<thead><tr>"
        + ("<th>source</th>" if len(data.sources) > 1 else "")
        + "<th>volume</th><th>resource</th>"
        '<th class="num">used / quota</th><th class="num">used</th><th>daily utilization</th>'
        + (
            '<th class="num">days to full<div class="small">80% interval</div></th>'
            "<th>full on</th><th>state</th>"
            if days
            else ""
        )
        + "<th>risk</th></tr></thead>"
    )


def _full_table(data: ReportData) -> str:
    if not data.full:
        return '<p id="already-full-empty">No volume is at or over a quota.</p>'
    return (
        '<table id="already-full-table">'
        + _risk_head(data, days=False)
        + "<tbody>"
        + _risk_rows(data, data.full, days=False)
        + "</tbody></table>"
    )


def _at_risk_table(data: ReportData) -> str:
    if not data.at_risk:
        return '<p id="at-risk-empty">No volume is expected to fill within 30 days.</p>'
    return (
        '<table id="at-risk-table">'
        + _risk_head(data, days=True)
        + "<tbody>"
        + _risk_rows(data, data.at_risk, days=True)
        + "</tbody></table>"
    )


def _mount_table(data: ReportData) -> str:
    if not data.mount_pressure:
        return '<p id="mount-pressure-empty">Every volume can take another mount.</p>'
    listed = data.listed
    rows = "".join(
        "<tr>"
        + (f"<td>{escape(r['source'])}</td>" if len(data.sources) > 1 else "")
        + _volume_cell(r["volume_id"], r["name"], linked=data.key(r) in listed, key=data.key(r))
        + f"<td>{escape(r['status'] or '')}</td>"
        + f'<td class="num">{r["mount_count"]:,} / {r["max_mounts"]:,}</td>'
        + f'<td class="num">{percent(r["mount_pressure"])}</td>'
        + f"<td>{_risk(r['risk'])}</td></tr>"
        for r in data.mount_pressure
    )
    return (
        '<table id="mount-pressure-table"><thead><tr>'
        + ("<th>source</th>" if len(data.sources) > 1 else "")
        + '<th>volume</th><th>status</th><th class="num">mounts / limit</th>'
        '<th class="num">pressure</th><th>capacity risk</th></tr></thead><tbody>'
        + rows
        + "</tbody></table>"
    )


def _leaders_table(data: ReportData) -> str:
    if not data.leaders:
        return "<p>No growth measured yet.</p>"
    at_risk = data.listed
    rows = "".join(
        "<tr>"
        + _volume_cell(r["volume_id"], r["name"], linked=data.key(r) in at_risk, key=data.key(r))
        + f'<td class="num">{escape(human_bytes(r["bytes_growth_per_day_7d"]))}/day</td>'
        + f'<td class="num">{escape(human_bytes(r["bytes_growth_per_day_30d"]))}/day</td>'
        + f'<td class="num">{escape(human_bytes(r["used_bytes"]))} / '
        f"{escape(human_bytes(r['max_size_bytes']) if r['max_size_bytes'] is not None else 'unlimited')}</td>"
        + f'<td class="num">{escape(human_days(r["days_to_full"]))}</td>'
        + f"<td>{_risk(r['risk'])}</td></tr>"
        for r in data.leaders
    )
    return (
        '<table id="growth-table"><thead><tr><th>volume</th><th class="num">growth, 7 days</th>'
        '<th class="num">growth, 30 days</th><th class="num">used / quota</th>'
        '<th class="num">days to full</th><th>risk</th></tr></thead><tbody>'
        + rows
        + "</tbody></table>"
    )


def _events_table(data: ReportData) -> str:
    if not data.events:
        return "<p>No quota changed in the recorded history.</p>"
    at_risk = data.listed

    def limit(name: str, value: float | None) -> str:
        return "unlimited" if value is None else human_amount(name, value)

    rows = "".join(
        "<tr>"
        + f"<td>{escape(human_date(e['changed_at'], with_time=True))}</td>"
        + _volume_cell(e["volume_id"], e["name"], linked=data.key(e) in at_risk, key=data.key(e))
        + f"<td><code>{escape(e['limit_name'])}</code></td>"
        + f'<td class="num">{escape(limit(e["limit_name"], e["old_value"]))}</td>'
        + f'<td class="num">{escape(limit(e["limit_name"], e["new_value"]))}</td></tr>'
        for e in data.events
    )
    return (
        '<table id="quota-events-table"><thead><tr><th>changed</th><th>volume</th><th>limit</th>'
        '<th class="num">from</th><th class="num">to</th></tr></thead><tbody>'
        + rows
        + "</tbody></table>"
    )


def _freshness(data: ReportData, cadence_minutes: int) -> str:
    age = data.generated_at - data.as_of
    missing = (
        "none"
        if not data.missing
        else f"{len(data.missing)} (first: {human_date(data.missing[0], with_time=True)})"
    )
    stale_volumes = sorted({s["volume_id"] for s in data.stale})
    stale = "none" if not stale_volumes else f"{len(stale_volumes)} volumes"
    oldest = (
        f", oldest reconciliation {human_date(data.stale[0]['last_reconciled_at'], with_time=True)}"
        if data.stale
        else ""
    )
    rows = [
        (
            "latest snapshot",
            f"{human_date(data.as_of, with_time=True)} ({human_days(age.total_seconds() / 86400)} before this report)",
        ),
        (
            "history",
            "no volumes yet: no snapshot has listed one"
            if data.no_volumes_yet
            else f"{data.snapshots:,} snapshots since {human_date(data.first_snapshot, with_time=True)}, every {cadence_minutes} min",
        ),
        ("missing snapshots", missing),
        ("stale reconciliations", f"{stale}{oldest} (older than {settings.STALE_AFTER})"),
        ("insufficient history", f"{data.state_counts.get('insufficient_history', 0):,} volumes"),
        ("report generated", human_date(data.generated_at, with_time=True)),
    ]
    return (
        '<table id="freshness-table"><tbody>'
        + "".join(f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>" for k, v in rows)
        + "</tbody></table>"
    )


def render(data: ReportData, *, cadence_minutes: int = settings.DEFAULT_CADENCE_MINUTES) -> str:
    """The whole report as one HTML document: inline CSS and SVG, no external resources."""
    forecast = ""
    if data.forecast:
        end = data.forecast.points[-1]
        forecast = (
            f"<p>Fleet usage grows by <b>{escape(human_bytes(data.forecast.growth_per_day))}/day</b> "
            f"(least squares on end-of-day totals); in {FORECAST_DAYS} days it reaches "
            f"<b>{escape(human_bytes(end[1]))}</b> (80% interval {escape(human_bytes(end[2]))} – "
            f"{escape(human_bytes(end[3]))}).</p>"
        )
    capacity = forecast + fleet_capacity_chart(data) + fleet_forecast_chart(data)
    if data.no_volumes_yet:
        capacity = (
            '<p id="no-volumes">No volumes yet: every snapshot up to '
            f"{escape(human_date(data.as_of, with_time=True))} was a valid, empty list. "
            "Charts and forecasts appear once the API lists a volume.</p>"
        )
    sections = [
        (
            "fleet-capacity",
            "Fleet capacity",
            capacity,
        ),
        (
            "already-full",
            "Already full",
            f'<p class="muted">Volumes at or over their byte or file-count quota now '
            f"({data.state_counts.get('full', 0):,} in all; fullest first, top "
            f"{len(data.full)}).</p>" + _full_table(data),
        ),
        (
            "time-to-full",
            "Time to full",
            f'<p class="muted">Volumes that may run out of bytes or files within '
            f"{settings.WARNING_DAYS:.0f} days, soonest first by the early end of the 80% "
            f"interval (top {len(data.at_risk)}). The binding resource is whichever fills "
            "first; the sparkline is its daily utilization, the rule marks 100%.</p>"
            + _at_risk_table(data),
        ),
        (
            "mount-pressure",
            "Mount pressure",
            f'<p class="muted">Volumes that can take no more mounts ({data.mounts_at_limit:,} '
            "in all; largest limits first). Not a capacity risk: an attached single-mount "
            "volume is always at its limit.</p>" + _mount_table(data),
        ),
        ("growth-leaders", "Growth leaders", _leaders_table(data)),
        ("quota-events", "Recent quota events", _events_table(data)),
        (
            "status",
            "Status over time",
            "<p>No volumes yet.</p>" if data.no_volumes_yet else status_chart(data),
        ),
        ("freshness", "Data freshness", _freshness(data, cadence_minutes)),
    ]
    nav = "".join(f'<a href="#{key}">{escape(title)}</a>' for key, title, _ in sections)
    body = "".join(
        f'<section id="{key}"><h2>{escape(title)}</h2>{content}</section>'
        for key, title, content in sections
    )
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>volcap capacity report — {escape(human_date(data.as_of, with_time=True))}</title>"
        f"<style>{CSS}</style></head><body>"
        f"<header><h1>Volume capacity report</h1><p>As of {escape(human_date(data.as_of, with_time=True))}"
        + (
            " · no volumes yet"
            if data.no_volumes_yet
            else f" · {data.latest_day.get('volumes', 0):,} volumes"
        )
        + "</p></header>"
        f"<nav>{nav}</nav><main>{_cards(data)}{body}</main></body></html>"
    )


# -- writing --------------------------------------------------------------------------------


@dataclass
class WrittenReport:
    path: Path
    chart_path: Path
    bytes: int
    data: ReportData
    chart_svg: str


def write_report(
    data_dir: Path, *, cadence_minutes: int = settings.DEFAULT_CADENCE_MINUTES
) -> WrittenReport:
    """Render `reports/capacity.html` (and the fleet chart as a standalone SVG) atomically."""
    data = load(Path(data_dir), cadence_minutes=cadence_minutes)
    out = Path(data_dir) / REPORTS_DIR
    path = out / REPORT_FILE
    size = publish.write_text(path, render(data, cadence_minutes=cadence_minutes))
    chart = charts.standalone(fleet_capacity_chart(data, width=720, height=280))
    chart_path = out / CHART_FILE
    publish.write_text(chart_path, chart)
    return WrittenReport(path=path, chart_path=chart_path, bytes=size, data=data, chart_svg=chart)
