"""Publishing a file: written under a temporary name, private, synced, then renamed into place.

Every writer of the data dir (the lake, the report, the object-store cache, the warehouse)
publishes through `publish`, so a reader sees the previous file or the new one, never part of
one, a crash leaves at most a temporary file behind, and nothing is ever world-readable.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

# Files and directories we create carry no world access.
FILE_MODE = 0o640
DIR_MODE = 0o750


def mkdir_private(path: Path) -> None:
    """Create `path` and its missing parents with `DIR_MODE`."""
    # hand-written: `Path.mkdir(parents=True)` creates the parents with the default
    # (world-readable) mode, whatever `mode` says
    missing = []
    while not path.exists():
        missing.append(path)
        path = path.parent
    for folder in reversed(missing):
        with contextlib.suppress(FileExistsError):
            folder.mkdir(mode=DIR_MODE)


def fsync_dir(path: Path) -> None:
    """Make the folder's entries (a rename, a removal) durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def publish(staged: Path, final: Path) -> None:
    """Atomically move a fully written staged file into place (replacing any previous one):
    sync it, make it private, create `final`'s folder privately, rename, sync the folder.
    `staged` must be on the same filesystem as `final` (beside it, or in the data dir's
    staging folder)."""
    with open(staged, "rb") as f:
        os.fsync(f.fileno())
    os.chmod(staged, FILE_MODE)
    mkdir_private(final.parent)
    os.replace(staged, final)
    fsync_dir(final.parent)


@contextlib.contextmanager
def staged_beside(final: Path, suffix: str = ".tmp") -> Iterator[Path]:
    """A new private file in `final`'s folder (created privately) to write; published over
    `final` when the block ends, removed if it raises. Its name starts with a dot, so a glob
    of the folder's files does not see it."""
    mkdir_private(final.parent)
    staged = final.with_name(f".{final.name}.{uuid.uuid4().hex[:12]}{suffix}")
    os.close(os.open(staged, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE))
    try:
        yield staged
        publish(staged, final)
    except BaseException:
        staged.unlink(missing_ok=True)
        raise


def write_text(final: Path, text: str) -> int:
    """Publish `text` as the file `final` (UTF-8); returns its size in bytes."""
    with staged_beside(final) as staged:
        staged.write_text(text, encoding="utf-8")
    return len(text.encode())
