"""The capacity report: one self-contained HTML file read from the published warehouse."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from html import escape
from pathlib import Path
from typing import Any

from pipelines import charts, publish, queries, receipts, settings
from pipelines.sources import DEFAULT_SOURCE
from pipelines.warehouse import connect_published

#: the data-quality checks' queries (sql/checks/), one of which the freshness table shows
REPORTS_DIR = "reports"
REPORT_FILE = "capacity.html"
CHART_FILE = "fleet_capacity.svg"

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
    """The fleet_forecast table: the fleet's line and its prediction interval, day by day."""

    growth_per_day: float
    points: list[tuple[float, float, float, float]]  # (unix s, point, low, high)
    #: how far ahead the last point lies
    days: int
    #: the interval's coverage (0.8: an 80% interval)
    coverage: float

    @property
    def interval(self) -> str:
        """The band's name: '80% interval'."""
        return f"{self.coverage:.0%} interval"

    @classmethod
    def of(cls, rows: list[dict[str, Any]]) -> FleetForecast | None:
        """From fleet_forecast's rows, nearest first; None when it has none (too little history)."""
        if not rows:
            return None
        return cls(
            growth_per_day=rows[0]["growth_per_day"],
            points=[
                (
                    r["forecast_at"].timestamp(),
                    r["used_bytes"],
                    r["used_bytes_low"],
                    r["used_bytes_high"],
                )
                for r in rows
            ],
            days=rows[-1]["days_ahead"],
            coverage=rows[0]["interval_coverage"],
        )


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
    #: snapshot instants missing from a source's history (snapshot_at, source), per source
    missing: list[dict[str, Any]]
    stale: list[dict[str, Any]]
    paths: dict[str, str] = field(default_factory=dict)
    sources: list[str] = field(default_factory=lambda: [DEFAULT_SOURCE])
    #: forecast_accuracy per method and horizon (pipelines/receipts.py)
    receipts: list[dict[str, Any]] = field(default_factory=list)

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


def load(
    data_dir: Path,
    *,
    cadence_minutes: int = settings.DEFAULT_CADENCE_MINUTES,
    limit: int = 50,
    full_limit: int = 20,
) -> ReportData:
    """Read everything the report shows from the published warehouse (read-only), each part
    by its named query in `sql/report/`."""

    with connect_published(data_dir) as con:
        con.execute("set timezone = 'UTC'")

        def read(name: str, **params: Any) -> list[dict[str, Any]]:
            return queries.rows(con, queries.REPORT, name, **params)

        span = queries.one(con, queries.REPORT, "snapshot_span")
        # when every snapshot so far listed no volume, the build's as_of is the latest of them
        as_of = span["latest_snapshot"] or span["built_as_of"]
        if as_of is None:
            raise ValueError("the warehouse has no snapshots yet: run `volcap build` first")
        hourly = read("fleet_hourly")
        fleet_days = read("fleet_days")
        growth = read("fleet_growth")
        forecast = read("fleet_forecast_points")
        counts: dict[str, dict[str, int]] = {}
        for row in read("risk_counts"):
            counts.setdefault(row["counted"], {})[str(row["value"])] = int(row["volumes"])
        full = read("already_full", limit=full_limit)
        at_risk = read("at_risk", limit=limit)
        sparks: dict[str, list[float | None]] = {}
        if full or at_risk:
            keys = [spark_key(r) for r in full + at_risk]
            for row in read("utilization_sparks", keys=keys):
                sparks[spark_key(row)] = list(row["utilization"])
        mount_pressure = read("mount_pressure", limit=limit)
        leaders = read("growth_leaders")
        events = read("quota_changes")
        # the no_missing_snapshots check's own query, looking back over the whole history
        cadence = timedelta(minutes=cadence_minutes)
        history = as_of - (span["first_snapshot"] or as_of) + cadence
        missing = queries.rows(
            con, queries.CHECKS, "no_missing_snapshots", cadence=cadence_minutes, window=history
        )
        stale = read("stale_forecasts")
        sources = [row["source"] for row in read("sources")]
        forecast_receipts = receipts.accuracy(con)
    return ReportData(
        generated_at=datetime.now(UTC),
        as_of=as_of,
        first_snapshot=span["first_snapshot"] or as_of,
        snapshots=int(span["snapshots"]),
        fleet_hourly=[
            (r["snapshot_at"], float(r["used_bytes"] or 0), float(r["max_size_bytes"] or 0))
            for r in hourly
        ],
        fleet_days=fleet_days,
        forecast=FleetForecast.of(forecast),
        fleet_growth=growth[0] if growth else {},
        risk_counts=counts.get("risk", {}),
        state_counts=counts.get("state", {}),
        full=full,
        at_risk=at_risk,
        mount_pressure=mount_pressure,
        mounts_at_limit=counts.get("mounts", {}).get("at_limit", 0),
        sparks=sparks,
        leaders=leaders,
        events=events,
        missing=missing,
        stale=stale,
        sources=sources,
        receipts=forecast_receipts,
    )


# -- charts ---------------------------------------------------------------------------------


def fleet_capacity_chart(data: ReportData, *, width: int = 900, height: int = 320) -> str:
    """Fleet usage and bounded quota over time, with the 30-day forecast and its interval."""
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
                data.forecast.interval,
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
        bands=[charts.Band(data.forecast.interval, [(x, lo, hi) for x, _, lo, hi in points])],
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


def _risk_table(
    data: ReportData, rows: list[dict[str, Any]], name: str, empty: str, *, days: bool
) -> str:
    """A list of volume_risk rows (`name`-table), or the sentence saying it is empty."""
    if not rows:
        return f'<p id="{name}-empty">{empty}</p>'
    return (
        f'<table id="{name}-table">'
        + _risk_head(data, days=days)
        + "<tbody>"
        + _risk_rows(data, rows, days=days)
        + "</tbody></table>"
    )


def _full_table(data: ReportData) -> str:
    return _risk_table(
        data, data.full, "already-full", "No volume is at or over a quota.", days=False
    )


def _at_risk_table(data: ReportData) -> str:
    return _risk_table(
        data, data.at_risk, "at-risk", "No volume is expected to fill within 30 days.", days=True
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
    missing = "none"
    if data.missing:
        first = data.missing[0]
        where = f" in {first['source']}" if len(data.sources) > 1 else ""
        missing = (
            f"{len(data.missing)} (first: {human_date(first['snapshot_at'], with_time=True)}"
            f"{where})"
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
            f"(least squares on end-of-day totals); in {data.forecast.days} days it reaches "
            f"<b>{escape(human_bytes(end[1]))}</b> ({data.forecast.interval} "
            f"{escape(human_bytes(end[2]))} – "
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
            f"in all; in risk order, top {len(data.mount_pressure)}). Not a capacity risk: an "
            "attached single-mount volume is always at its limit.</p>" + _mount_table(data),
        ),
        ("receipts", "How good are these forecasts", receipts.html_section(data.receipts)),
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
