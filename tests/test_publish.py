"""The one publish primitive: private, synced, renamed into place, nothing left on failure."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipelines import publish


def _mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def test_a_published_file_and_every_folder_created_for_it_are_private(tmp_path: Path) -> None:
    final = tmp_path / "a" / "b" / "report.html"
    assert publish.write_text(final, "naïve") == len("naïve".encode())
    assert final.read_text(encoding="utf-8") == "naïve"
    assert _mode(final) & 0o007 == 0 and _mode(final) & 0o600 == 0o600
    assert all(_mode(folder) & 0o007 == 0 for folder in (tmp_path / "a", tmp_path / "a" / "b"))
    assert sorted(p.name for p in final.parent.iterdir()) == ["report.html"]


def test_a_failed_write_leaves_the_previous_file_and_no_temporary(tmp_path: Path) -> None:
    final = tmp_path / "index.json"
    publish.write_text(final, "old")
    with pytest.raises(RuntimeError), publish.staged_beside(final) as staged:
        assert _mode(staged) & 0o007 == 0  # private before a byte is written
        staged.write_text("half of the new")
        raise RuntimeError("the writer died")
    assert final.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["index.json"]


def test_a_staged_file_is_hidden_from_globs_of_its_folder(tmp_path: Path) -> None:
    final = tmp_path / "day.parquet"
    with publish.staged_beside(final) as staged:
        staged.write_bytes(b"PAR1")
        assert list(tmp_path.glob("*.parquet")) == []
    assert list(tmp_path.glob("*.parquet")) == [final]
