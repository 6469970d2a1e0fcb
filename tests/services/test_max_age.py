"""`maxAgeSeconds`: an answer no older than the caller asked, read through the shared cache
— never more often than the provider's quota allows, and then saying so."""

from __future__ import annotations

from typing import Any

import httpx

from gateway.simulator import Simulator
from tests.helpers import FakeClock, demo_settings, running_gateway, with_account

QUERY = """query($ids: [ID!], $age: Int) { balances(accountIds: $ids, maxAgeSeconds: $age) {
  results { ... on AccountBalance { account { id } fetchedAt stale
    freshnessLimit { code message maxAgeSeconds allowedMaxAgeSeconds } } } } }"""
ACCOUNT = """query($age: Int) { account(id: "magma") { balance(maxAgeSeconds: $age) {
  ... on AccountBalance { fetchedAt freshnessLimit { code } } } } }"""


def only(result: dict[str, Any]) -> dict[str, Any]:
    assert "errors" not in result, result
    (answer,) = result["data"]["balances"]["results"]
    return dict(answer)


async def test_an_answer_is_never_older_than_asked_and_zero_is_a_live_read(
    sim: Simulator, sim_transport: httpx.AsyncBaseTransport, clock: FakeClock
) -> None:
    settings = with_account(demo_settings(), "magma", fresh_seconds=60)
    async with running_gateway(settings, sim_transport, clock) as gateway:
        first = only(await gateway.query(QUERY, {"ids": ["magma"]}))
        clock.advance(10)
        # the account's own window (60 s): the cached answer, 10 s old
        assert (
            only(await gateway.query(QUERY, {"ids": ["magma"], "age": 30}))["fetchedAt"]
            == (first["fetchedAt"])
        )
        assert sim.state.calls["magma:balance"] == 1
        newer = only(await gateway.query(QUERY, {"ids": ["magma"], "age": 5}))
        assert newer["fetchedAt"] > first["fetchedAt"] and newer["freshnessLimit"] is None
        assert sim.state.calls["magma:balance"] == 2
        live = only(await gateway.query(QUERY, {"ids": ["magma"], "age": 0}))
        assert sim.state.calls["magma:balance"] == 3 and live["freshnessLimit"] is None
        # the same on `account.balance`
        clock.advance(1)
        answer = await gateway.query(ACCOUNT, {"age": 0})
        assert answer["data"]["account"]["balance"]["freshnessLimit"] is None
        assert sim.state.calls["magma:balance"] == 4
        # a caller who asks for more than fresh_seconds is served what the cache holds
        clock.advance(30)
        await gateway.query(QUERY, {"ids": ["magma"], "age": 3600})
        assert sim.state.calls["magma:balance"] == 4


async def test_fresher_than_the_quota_allows_is_the_freshest_allowed_with_the_reason(
    sim: Simulator, sim_transport: httpx.AsyncBaseTransport, clock: FakeClock
) -> None:
    settings = with_account(demo_settings(), "magma", fresh_seconds=60, calls_per_day=4320)
    async with running_gateway(settings, sim_transport, clock) as gateway:  # one read / 20 s
        first = only(await gateway.query(QUERY, {"ids": ["magma"], "age": 0}))
        assert first["freshnessLimit"] is None
        clock.advance(12)
        held = only(await gateway.query(QUERY, {"ids": ["magma"], "age": 0}))
        assert held["fetchedAt"] == first["fetchedAt"]
        assert sim.state.calls["magma:balance"] == 1
        assert held["freshnessLimit"] == {
            "code": "QUOTA",
            "message": "Read 12 s before it was asked for, not 0 s: its call quota allows "
            "one read every 20 s.",
            "maxAgeSeconds": 0,
            "allowedMaxAgeSeconds": 20,
        }
        clock.advance(8)  # 20 s: the quota allows another read
        again = only(await gateway.query(QUERY, {"ids": ["magma"], "age": 0}))
        assert again["freshnessLimit"] is None and again["fetchedAt"] > first["fetchedAt"]
        assert sim.state.calls["magma:balance"] == 2


async def test_a_failing_provider_serves_the_last_answer_saying_it_is_stale(
    sim: Simulator, sim_transport: httpx.AsyncBaseTransport, clock: FakeClock
) -> None:
    async with running_gateway(demo_settings(), sim_transport, clock) as gateway:
        only(await gateway.query(QUERY, {"ids": ["magma"]}))
        clock.advance(5)
        sim.state.set_faults("magma", status=503)
        stale = only(await gateway.query(QUERY, {"ids": ["magma"], "age": 1}))
    assert stale["stale"] is True
    assert stale["freshnessLimit"]["code"] == "STALE"


async def test_a_max_age_out_of_range_is_the_callers_mistake(
    sim_transport: httpx.AsyncBaseTransport, clock: FakeClock
) -> None:
    async with running_gateway(demo_settings(), sim_transport, clock) as gateway:
        result = await gateway.query(QUERY, {"ids": ["magma"], "age": -1})
    assert result["errors"][0]["extensions"]["code"] == "VALIDATION"
