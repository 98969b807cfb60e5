"""The capacity report: every section, people's units, escaping, and nothing fetched from anywhere."""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path

import pytest

from pipelines import publish, report
from pipelines.warehouse import BuildError
from tests import reportcase

SECTIONS = (
    "fleet-capacity",
    "already-full",
    "time-to-full",
    "mount-pressure",
    "receipts",
    "growth-leaders",
    "quota-events",
    "status",
    "freshness",
)


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> report.WrittenReport:
    return report.write_report(reportcase.build(tmp_path_factory.mktemp("data")))


@pytest.fixture(scope="module")
def html(written: report.WrittenReport) -> str:
    return written.path.read_text(encoding="utf-8")


def test_report_has_every_section_with_its_content(html: str) -> None:
    for section in SECTIONS:
        assert f'<section id="{section}">' in html, section
    assert html.count("<svg") >= 2 + 1  # fleet chart, status chart, at least one sparkline
    assert 'id="at-risk-table"' in html
    assert 'id="already-full-table"' in html
    assert 'id="mount-pressure-table"' in html
    assert 'id="growth-table"' in html
    assert 'id="quota-events-table"' in html
    assert 'id="freshness-table"' in html


def test_forecast_receipts_show_every_method_beside_volcap_with_a_chart(
    written: report.WrittenReport, html: str
) -> None:
    """The same figures as forecast_accuracy: each method's error per horizon bucket."""
    figures = written.data.receipts
    assert {r["method"] for r in figures} == {
        "volcap",
        "predict_linear_6h",
        "predict_linear_window",
        "naive_7d",
    }
    section = html.split('<section id="receipts">', 1)[1].split("</section>", 1)[0]
    assert 'id="receipts-table"' in section
    assert "<svg" in section
    scored = [r for r in figures if r["mae_days"] is not None]
    assert scored  # the `critical` volume fills inside the lake
    for row in scored:
        assert f"<td>{row['method']}</td><td>{int(row['scored']):,} of " in section
        assert f"<td>{row['mae_days']:.1f} d</td>" in section


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def test_report_references_no_external_resource(html: str) -> None:
    """Opens offline: no URL of any scheme, nothing loaded, links only to anchors in the page."""
    assert "http://" not in html and "https://" not in html
    assert "url(" not in html and "@import" not in html
    parser = _Tags()
    parser.feed(html)
    names = {tag for tag, _ in parser.tags}
    assert not names & {"script", "link", "img", "iframe", "object", "embed", "image", "use"}
    assert not [attrs for _, attrs in parser.tags if "src" in attrs or "xlink:href" in attrs]
    ids = {attrs["id"] for _, attrs in parser.tags if attrs.get("id")}
    hrefs = [attrs["href"] or "" for _, attrs in parser.tags if "href" in attrs]
    assert hrefs, "the report links sections and volumes"
    for href in hrefs:
        assert href.startswith("#") and href[1:] in ids, href


def test_ranked_rows_have_anchors_resources_intervals_and_risk(
    written: report.WrittenReport, html: str
) -> None:
    full, ranked = written.data.full, written.data.at_risk
    assert {r["volume_id"] for r in full} == {"critical", reportcase.HOSTILE_ID}
    assert {r["state"] for r in full} == {"full"}
    # the rest soonest first by the early end of the interval: the critical one, then warning
    assert [r["volume_id"] for r in ranked] == ["soon", "warning"]
    assert [r["risk"] for r in ranked] == ["critical", "warning"]
    lows = [r["days_to_full_low"] for r in ranked]
    assert lows == sorted(lows)
    days = [r["days_to_full"] for r in ranked if r["risk"] == "warning"]
    assert days and all(d is not None and d <= 30 for d in days)
    for row in full + ranked:
        assert f'<tr id="{report.anchor(row["volume_id"])}">' in html
    # the warning volume: 25 GiB/day towards 1200 GiB, 80% interval shown
    warning = next(r for r in ranked if r["volume_id"] == "warning")
    assert warning["days_to_full_low"] <= warning["days_to_full"] <= warning["days_to_full_high"]
    assert report.human_days(warning["days_to_full"]) in html


def test_mounts_at_their_limit_are_mount_pressure_not_a_risk(
    written: report.WrittenReport, html: str
) -> None:
    """An attached volume at max_mounts is listed under mount pressure, never ranked critical."""
    data = written.data
    assert [r["volume_id"] for r in data.mount_pressure] == ["mounts"]
    assert data.mounts_at_limit == 1
    assert "4 / 4" in html
    listed = [r["volume_id"] for r in data.full + data.at_risk]
    assert "mounts" not in listed
    assert {r["binding_resource"] for r in data.full + data.at_risk} <= {"bytes", "inodes"}
    assert data.risk_counts.get("critical") == 3  # two full, one within a week


def test_hostile_names_are_escaped(html: str) -> None:
    assert "<img" not in html
    assert "&lt;img src=x onerror=alert(1)&gt;&amp;&quot;&#x27;" in html


def test_freshness_shows_latest_snapshot_gap_and_stale_volume(
    written: report.WrittenReport, html: str
) -> None:
    assert len(written.data.missing) == 1
    assert "missing snapshots</th><td>1 (first:" in html
    assert {s["volume_id"] for s in written.data.stale} == {"stale"}
    assert "stale reconciliations</th><td>1 volumes" in html
    assert report.human_date(written.data.as_of, with_time=True) in html


def test_quota_raise_and_growth_leaders_are_listed(written: report.WrittenReport) -> None:
    assert [(e["volume_id"], e["limit_name"]) for e in written.data.events] == [
        ("raised", "max_size_bytes")
    ]
    assert written.data.leaders[0]["volume_id"] == "unlimited"


def test_write_is_atomic_and_leaves_no_temporary_files(written: report.WrittenReport) -> None:
    folder = written.path.parent
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [report.CHART_FILE, report.REPORT_FILE]
    )
    assert written.path.stat().st_mode & 0o777 == publish.FILE_MODE
    assert folder.stat().st_mode & 0o007 == 0  # created private, like every folder we create
    assert written.chart_svg.startswith('<svg xmlns="http://www.w3.org/2000/svg"')


def test_report_without_a_warehouse_says_to_build_first(tmp_path: Path) -> None:
    with pytest.raises(BuildError, match="run a build first"):
        report.write_report(tmp_path)
    assert not (tmp_path / report.REPORTS_DIR / report.REPORT_FILE).exists()


@pytest.mark.parametrize(
    ("value", "text"),
    [
        pytest.param(0, "0 B", id="zero"),
        pytest.param(1536, "1.5 KiB", id="kibibytes"),
        pytest.param(5 * 2**40, "5.0 TiB", id="tebibytes"),
        pytest.param(-3 * 2**30, "-3.0 GiB", id="shrinking"),
        pytest.param(None, "—", id="unknown"),
    ],
)
def test_bytes_read_as_binary_units(value: float | None, text: str) -> None:
    assert report.human_bytes(value) == text


@pytest.mark.parametrize(
    ("value", "text"),
    [
        pytest.param(0.0, "now", id="full"),
        pytest.param(0.25, "6 h", id="hours"),
        pytest.param(12.34, "12.3 days", id="days"),
        pytest.param(1234.0, "1,234 days", id="years-away"),
        pytest.param(None, "—", id="no-trend"),
    ],
)
def test_days_read_as_hours_or_days(value: float | None, text: str) -> None:
    assert report.human_days(value) == text
