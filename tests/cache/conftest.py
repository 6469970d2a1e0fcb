"""The cache's tests: the demo on this test's cache (in memory, then on Redis: `cache_url`),
its keys under a namespace of the test's own; the app running on it; the store alone."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from gateway.cache.store import Store, open_store
from gateway.config.settings import Settings
from tests.helpers import FakeClock, GatewayClient, demo_settings, running_gateway, with_cache


@pytest.fixture
def cache_settings(cache_url: str, namespace: str) -> Settings:
    return with_cache(demo_settings(), cache_url, namespace)


@pytest.fixture
async def gw(
    cache_settings: Settings, sim_transport: httpx.AsyncBaseTransport, clock: FakeClock
) -> AsyncIterator[GatewayClient]:
    """The real app on `cache_settings`, its providers the simulator."""
    async with running_gateway(cache_settings, sim_transport, clock) as gw:
        yield gw


@pytest.fixture
async def store(cache_url: str, namespace: str) -> AsyncIterator[Store]:
    store = open_store(cache_url, namespace)
    yield store
    await store.close()
