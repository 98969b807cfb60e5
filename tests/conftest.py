"""Shared fixtures."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from simulator import SimulatorServer


@pytest.fixture
def simulator() -> Iterator[Callable[..., SimulatorServer]]:
    """Start loopback simulators (`simulator(volumes=200, token="t")`); all stop after the test."""
    started: list[SimulatorServer] = []

    def start(**kwargs: Any) -> SimulatorServer:
        server = SimulatorServer(**kwargs).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
