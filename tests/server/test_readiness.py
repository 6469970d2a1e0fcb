"""`/healthz` (liveness) and `/readyz` (readiness): cheap, unauthenticated, never rate
limited; ready only when the journal takes writes and the process is not draining."""

from __future__ import annotations

import dataclasses

import httpx

from gateway.access import RateLimit
from gateway.config.settings import IdempotencySettings
from gateway.services.journal import open_journal
from tests.helpers import (
    FakeClock,
    GatewayClient,
    demo_settings,
    production,
    running_gateway,
    with_section,
)


async def test_ready_when_built_and_draining_turns_it_off_while_alive(gw: GatewayClient) -> None:
    ready = await gw.http.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "checks": {"journal": "ok"}}
    assert ready.headers["cache-control"] == "no-store"
    gw.app.state.draining.start()  # what SIGTERM does (tests/system/test_shutdown.py)
    draining = await gw.http.get("/readyz")
    alive = await gw.http.get("/healthz")
    assert (draining.status_code, draining.json()) == (503, {"status": "draining"})
    assert (alive.status_code, alive.json()) == (200, {"status": "ok"})


async def test_a_journal_that_refuses_writes_is_not_ready(
    sim_transport: httpx.AsyncBaseTransport, clock: FakeClock, pg_url: str
) -> None:
    """A real read-only PostgreSQL session (as on a replica after a failover): top-ups
    could not be recorded, so this process must not take traffic."""
    writable = open_journal(pg_url)
    await writable.records()  # creates the table in this run's schema
    await writable.close()
    read_only = pg_url + "%20-cdefault_transaction_read_only%3Don"
    settings = dataclasses.replace(demo_settings(), idempotency=IdempotencySettings(read_only))
    async with running_gateway(settings, sim_transport, clock) as gw:
        answer = await gw.http.get("/readyz")
        balances = await gw.query("{ balances { complete } }")
    assert answer.status_code == 503
    assert answer.json() == {"status": "not_ready", "checks": {"journal": "unwritable"}}
    assert balances["data"]["balances"]["complete"] is True  # it still answers if asked


async def test_health_checks_need_no_key_and_meet_no_rate_limit(
    sim_transport: httpx.AsyncBaseTransport, clock: FakeClock
) -> None:
    settings = with_section(production(demo_settings()), "security", rate_limit=RateLimit(1.0, 1))
    async with running_gateway(settings, sim_transport, clock, key=None) as gw:
        answers = [await gw.http.get(path) for path in ("/readyz", "/healthz") * 20]
        graphql = await gw.post("{ __typename }")
    assert {a.status_code for a in answers} == {200}
    assert graphql.status_code == 401  # the same app does want a key elsewhere
