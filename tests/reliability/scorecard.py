"""The reliability scorecard: run the fault, crash, concurrency, secrets and property suites
(slow ones included) and print one line per family. Exit status is non-zero unless every
figure is what it should be.

    uv run python -m tests.reliability.scorecard [--fast] [pytest args...]
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

SUITES = [
    "tests/test_client.py",
    "tests/test_crash.py",
    "tests/test_concurrency.py",
    "tests/test_security.py",
    "tests/test_properties.py",
    "tests/test_objectstore.py",
    "tests/reliability",
]
#: Families measured by module outcomes alone (every test is one injected fault).
MODULE_FAMILIES = {
    "tests/test_client.py": "HTTP faults (fault server)",
    "tests/test_properties.py": "contract properties",
}
COLUMNS = [
    ("injected", "faults"),
    ("survived", "survived"),
    ("rows_lost", "rows lost"),
    ("duplicate_rows", "dup rows"),
    ("corrupt_files", "corrupt"),
    ("reader_errors", "reader err"),
    ("canary_hits", "canary"),
    ("files_outside", "outside"),
]


def main(argv: list[str]) -> int:
    fast = "--fast" in argv
    extra = [a for a in argv if a != "--fast"]
    root = Path(__file__).resolve().parents[2]
    with tempfile.TemporaryDirectory() as tmp:
        scorefile = Path(tmp) / "score.jsonl"
        env = {**os.environ, "VOLCAP_SCORECARD": str(scorefile)}
        marker = "not slow" if fast else "slow or not slow"
        cmd = [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "tests.reliability.plugin",
            "-m",
            marker,
            "-p",
            "no:cacheprovider",
            *SUITES,
            *extra,
        ]
        status = subprocess.run(cmd, cwd=root, env=env).returncode
        lines = scorefile.read_text().splitlines() if scorefile.exists() else []
    families: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    modules: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for line in lines:
        row = json.loads(line)
        family = row.pop("family")
        if family == "__module__":
            modules[row["module"]][row["outcome"]] += 1
            continue
        for key, value in row.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                families[family][key] += int(value)
    for module, family in MODULE_FAMILIES.items():
        if module in modules:
            tally = modules[module]
            families[family]["injected"] += sum(tally.values())
            families[family]["survived"] += tally.get("passed", 0)
    print()
    header = f"{'family':<30}" + "".join(f"{title:>11}" for _, title in COLUMNS) + "  verdict"
    print(header)
    print("-" * len(header))
    all_ok = status == 0
    for family in sorted(families):
        figures = families[family]
        ok = (
            figures["injected"] > 0
            and figures["survived"] == figures["injected"]
            and not any(figures[key] for key, _ in COLUMNS[2:])
        )
        all_ok &= ok
        cells = "".join(f"{figures[key]:>11}" for key, _ in COLUMNS)
        print(f"{family:<30}{cells}  {'OK' if ok else 'FAIL'}")
    failed = sum(t.get("failed", 0) for t in modules.values())
    print(
        f"{'tests':<30} {sum(sum(t.values()) for t in modules.values())} run, {failed} failed"
        f" (pytest exit {status})"
    )
    print("SCORECARD", "OK" if all_ok else "FAIL")
    return 0 if all_ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
