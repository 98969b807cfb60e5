"""A pytest plugin for the scorecard: tallies outcomes per test module into the scorecard file."""

from __future__ import annotations

from typing import Any

from tests.reliability.score import record


def pytest_runtest_logreport(report: Any) -> None:
    if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
        module = report.nodeid.split("::", 1)[0]
        record("__module__", module=module, outcome=report.outcome)
