"""A deterministic simulated fleet behind the provider's volume-list API, for tests and demos."""

from simulator.fleet import SCENARIOS, Fleet
from simulator.server import DEFAULT_START, DEFAULT_TOKEN, SimulatorServer, serve

__all__ = ["DEFAULT_START", "DEFAULT_TOKEN", "SCENARIOS", "Fleet", "SimulatorServer", "serve"]
