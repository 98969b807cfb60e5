"""Why a build did not publish: the errors the warehouse engine raises."""

from __future__ import annotations


class BuildError(RuntimeError):
    """The warehouse could not be built; the published one is untouched."""


class EmptyLakeError(BuildError):
    """The lake holds no snapshot files yet."""


class FullBuildNeeded(Exception):
    """An incremental build is not possible or not trustworthy; the message says why."""
