from __future__ import annotations

import httpx
import pytest

from gateway.simulator import Simulator, create_simulator
from gateway.simulator.state import SimState
from gateway.upstream import UpstreamClient
from tests.helpers import FakeClock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def sim(clock: FakeClock) -> Simulator:
    return create_simulator(SimState(clock=clock))


@pytest.fixture
def sim_transport(sim: Simulator) -> httpx.AsyncBaseTransport:
    return httpx.ASGITransport(app=sim.app)


@pytest.fixture
async def http(sim_transport: httpx.AsyncBaseTransport, clock: FakeClock) -> UpstreamClient:
    client = UpstreamClient(sim_transport, wall_clock=clock)
    yield client
    await client.aclose()
