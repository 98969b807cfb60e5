"""volcap: capacity history and quota forecasts for a storage platform's volumes."""

from __future__ import annotations


def __getattr__(name: str) -> str:
    # `__version__` is looked up when first used (the API client's User-Agent): importing
    # importlib.metadata and scanning the installed packages cost every command ~0.1-0.2 s
    if name != "__version__":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib.metadata import PackageNotFoundError, version

    try:
        found = version("volcap")
    except PackageNotFoundError:  # running from a source tree that is not installed
        found = "0.0.0"
    globals()["__version__"] = found
    return found
