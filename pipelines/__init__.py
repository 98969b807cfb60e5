"""volcap: capacity history and quota forecasts for a storage platform's volumes."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("volcap")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0"
