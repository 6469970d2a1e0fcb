"""`/metrics`: what operators see of upstreams, caches, budgets and breakers."""

from __future__ import annotations

import httpx

from gateway.simulator import Simulator
from tests.helpers import FakeClock, demo_settings, running_gateway, with_cache

QUERY = "{ balances { complete } }"


async def test_metrics_follow_upstream_calls_cache_and_breaker(
    sim: Simulator, sim_transport: httpx.AsyncBaseTransport, clock: FakeClock
) -> None:
    settings = with_cache(demo_settings(), "memory://", "m", response_cache=False)
    async with running_gateway(settings, sim_transport, clock) as gw:
        await gw.query(QUERY)
        await gw.query(QUERY)
        sim.state.set_faults("magma", status=503)
        clock.advance(20)
        await gw.query(QUERY)  # three 503 attempts, then stale
        text = (await gw.http.get("/metrics")).text
        ok = await gw.metric("gateway_upstream_requests_total", account="magma", outcome="ok")
        failed = await gw.metric(
            "gateway_upstream_requests_total", account="magma", outcome="http_5xx"
        )
        hits = await gw.metric("gateway_cache_events_total", account="magma", event="hit")
        stale = await gw.metric("gateway_cache_events_total", account="magma", event="stale")
        taken = await gw.metric("gateway_budget_calls_total", account="muda-ug", result="taken")
        breaker = await gw.metric("gateway_breaker_state", account="magma")
    assert (ok, failed, hits, stale) == (1, 3, 1, 1)
    assert taken == 3  # token + balance, a cache hit (no call), then one balance read
    assert breaker == 0  # three failures are below the threshold of five
    assert 'gateway_upstream_latency_seconds_bucket{account="magma"' in text
    assert "gateway_upstream_in_flight" in text and "gateway_graphql_in_flight" in text
    assert "demo-" not in text  # no credential in any label
