"""Redis failing mid-run: answers continue from the upstreams (readiness says `degraded`,
still 200), then caching recovers.

Uses its own redis-server on a spare port (`own_redis`: started and killed here), never
the shared one.
"""

from __future__ import annotations

import logging

import httpx
import pytest

from gateway.simulator import Simulator
from tests.cache.conftest import RedisProcess
from tests.helpers import FakeClock, demo_settings, running_gateway, with_cache

QUERY = '{ balances(accountIds: ["magma"]) { complete results { __typename } } }'


async def test_redis_dying_mid_run_then_returning(
    own_redis: RedisProcess,
    sim: Simulator,
    sim_transport: httpx.AsyncBaseTransport,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = with_cache(
        demo_settings(), f"redis://127.0.0.1:{own_redis.port}/0", "outage", response_cache=False
    )
    async with running_gateway(settings, sim_transport, clock) as gw:
        await gw.query(QUERY)
        await gw.query(QUERY)
        assert sim.state.calls_to("magma", "balance") == 1  # cached in Redis
        ready = await gw.http.get("/readyz")
        assert (ready.status_code, ready.json()["status"]) == (200, "ready")

        own_redis.stop()
        # Degraded, still ready: every replica out of rotation at once would be worse.
        degraded = await gw.http.get("/readyz")
        assert degraded.status_code == 200
        assert degraded.json() == {
            "status": "degraded",
            "checks": {"cache": "unreachable", "journal": "ok"},
        }
        with caplog.at_level(logging.WARNING, logger="gateway.cache.store"):
            for _ in range(3):
                response = await gw.post(QUERY)
                assert response.status_code == 200
                assert response.json()["data"]["balances"]["complete"] is True
        assert sim.state.calls_to("magma", "balance") == 4  # straight to the upstream
        warnings = [r for r in caplog.records if "cache backend failing" in r.message]
        assert len(warnings) == 1  # rate-limited, not one per operation

        own_redis.start()
        assert (await gw.http.get("/readyz")).json()["checks"]["cache"] == "ok"
        await gw.query(QUERY)
        await gw.query(QUERY)
        assert sim.state.calls_to("magma", "balance") == 5  # cached again
    assert any("recovered" in r.message for r in caplog.records)
