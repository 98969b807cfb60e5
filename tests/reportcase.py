"""A small warehouse with every kind of row the capacity report shows, built from a seeded lake."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from pipelines.warehouse import build_warehouse
from tests.lakegen import END, GIB, Volume, linear, noisy, snapshots, weekly, write_lake

HOURS = 10 * 24
#: A volume id that must be escaped everywhere it appears (and made safe as a fragment id).
HOSTILE_ID = "<img src=x onerror=alert(1)>&\"'"


def volumes() -> list[Volume]:
    return [
        Volume("critical", used=noisy(linear(900 * GIB, 12 * GIB), GIB, 1)),
        Volume("soon", used=noisy(linear(700 * GIB, 20 * GIB), GIB, 3)),
        Volume(
            "warning", used=noisy(linear(500 * GIB, 25 * GIB), GIB, 2), max_size_bytes=1200 * GIB
        ),
        Volume("flat", used=weekly(300 * GIB, 20 * GIB)),
        Volume("unlimited", used=linear(100 * GIB, 50 * GIB), max_size_bytes=None),
        Volume(
            "raised",
            used=linear(700 * GIB, 20 * GIB),
            max_size_bytes=lambda day: 1000 * GIB if day < 6 else 2000 * GIB,
        ),
        Volume("mounts", mount_count=4, max_mounts=4, status="attached"),
        Volume("stale", used=linear(200 * GIB, 10 * GIB), stall_after_hour=HOURS - 48),
        Volume("deleted", last_hour=HOURS - 30, status="error"),
        Volume(HOSTILE_ID, used=linear(950 * GIB, 10 * GIB), status="degraded"),
    ]


def build(data_dir: Path) -> Path:
    """Write the lake (one hourly snapshot missing) and publish its warehouse."""
    frame = snapshots(volumes(), hours=HOURS, end=END)
    frame = frame.filter(frame["snapshot_at"] != END - timedelta(hours=5))
    write_lake(data_dir, frame)
    build_warehouse(data_dir)
    return data_dir
