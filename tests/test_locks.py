"""Lock files: one writer at a time, and no file left once nobody holds the lock."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest

from pipelines.compaction import compact_lake
from pipelines.lake import DataDir, exclusive_lock, sweep_locks

AT = datetime(2026, 3, 2, 7, 0, tzinfo=UTC)
REPO = Path(__file__).resolve().parents[1]


def test_a_released_partition_lock_leaves_no_file(tmp_path):
    data = DataDir.at(tmp_path)
    with data.partition_lock(AT):
        assert [p.name for p in data.locks.iterdir()] == ["20260302T0700Z.lock"]
    assert list(data.locks.iterdir()) == []
    with data.partition_lock(AT):  # and it can be taken again
        pass
    assert list(data.locks.iterdir()) == []


def test_a_held_lock_keeps_others_out_until_released(tmp_path):
    path = tmp_path / "p.lock"
    with exclusive_lock(path, 1, RuntimeError("busy")):
        with pytest.raises(TimeoutError, match="held"):
            with exclusive_lock(path, 0.2, TimeoutError("held")):
                pass
        assert path.exists()
    with exclusive_lock(path, 0.2, TimeoutError("held")):
        pass


def test_waiters_on_a_removed_file_start_over_so_there_is_never_a_second_holder(tmp_path):
    """A releaser removes the file while others wait on it; a waiter that then gets the lock on
    the removed file must not count as a holder beside one who created the new file."""
    path = tmp_path / "p.lock"
    holders, most, failures = [0], [0], []
    count = threading.Lock()

    def worker() -> None:
        try:
            for _ in range(40):
                with exclusive_lock(path, 60, TimeoutError("stuck")):
                    with count:
                        holders[0] += 1
                        most[0] = max(most[0], holders[0])
                    os.sched_yield()
                    with count:
                        holders[0] -= 1
        except Exception as exc:  # reported below, with the others
            failures.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert most[0] == 1
    assert not path.exists()


def test_sweep_removes_unheld_lock_files_and_keeps_held_ones(tmp_path):
    stale = [tmp_path / f"2026030{d}T0000Z.lock" for d in range(1, 4)]
    for path in stale:
        path.touch()
    held = tmp_path / "20260304T0000Z.lock"
    (tmp_path / "notes.txt").write_text("not a lock")
    with exclusive_lock(held, 1, RuntimeError("busy")):
        assert sweep_locks(tmp_path) == 3
        assert sorted(p.name for p in tmp_path.iterdir()) == [held.name, "notes.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]
    assert sweep_locks(tmp_path / "missing") == 0


def test_the_lock_of_a_killed_holder_is_released_and_swept_by_compaction(tmp_path):
    data = DataDir.at(tmp_path)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                f"""
                import sys, time
                from datetime import datetime
                from pipelines.lake import DataDir
                with DataDir.at({str(tmp_path)!r}).partition_lock(datetime.fromisoformat({AT.isoformat()!r})):
                    print("held", flush=True)
                    sys.stdin.read()
                """
            ),
        ],
        cwd=REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    with pytest.raises(TimeoutError):
        with data.partition_lock(AT, timeout=0.2):
            pass
    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=30)
    assert [p.name for p in data.locks.iterdir()] == ["20260302T0700Z.lock"]  # left behind
    assert compact_lake(data, now=AT) == []
    assert list(data.locks.iterdir()) == []
    with data.partition_lock(AT, timeout=0.2):
        pass
