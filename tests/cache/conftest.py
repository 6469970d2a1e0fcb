"""The cache's tests: the demo on this test's cache (in memory, then on Redis: `cache_url`),
its keys under a namespace of the test's own; the app running on it; the store alone; a
redis-server of the test's own that it stops and starts again (`own_redis`)."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
import redis

from gateway.cache.store import Store, open_store
from gateway.config.settings import Settings
from tests.helpers import (
    FakeClock,
    GatewayClient,
    demo_settings,
    free_port,
    running_gateway,
    with_cache,
)


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


class RedisProcess:
    def __init__(self, port: int) -> None:
        self.port = port
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis(port=self.port)
        try:
            for _ in range(200):
                try:
                    if client.ping():
                        return
                except redis.ConnectionError:
                    time.sleep(0.02)
            raise RuntimeError("redis-server did not start")
        finally:
            client.close()

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(5)
            self.process = None


@pytest.fixture
def own_redis() -> Iterator[RedisProcess]:
    if shutil.which("redis-server") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("redis-server is required in CI")
        pytest.skip("no redis-server binary")
    server = RedisProcess(free_port())
    server.start()
    try:
        yield server
    finally:
        server.stop()
