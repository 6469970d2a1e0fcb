"""`refreshBalances`: re-read accounts now, once however many callers ask at the same
moment, never past the quota; the response cache and live streams see the new values at
once; its own scope. (Two replica processes: tests/system/test_fleet.py.)"""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import httpx

from gateway.simulator import Simulator
from tests.helpers import (
    FakeClock,
    Ticker,
    client,
    demo_settings,
    ourvoice_fake,
    production,
    running_gateway,
    with_account,
    with_cache,
)
from tests.services.test_live import amount, live_gateway, stream

REFRESH = """mutation($ids: [ID!]) { refreshBalances(accountIds: $ids) { complete
  results { ... on AccountBalance { account { id } fetchedAt
    balances { total { amount } } freshnessLimit { code } } } } }"""
QUERY = """{ balances(accountIds: ["ourvoice-sn"]) { results { ... on AccountBalance {
  balances { total { amount } } } } } }"""


def total(result: dict[str, Any], field: str = "balances") -> str:
    (answer,) = result["data"][field]["results"]
    return str(answer["balances"][0]["total"]["amount"])


async def test_a_refresh_reads_again_and_cached_answers_follow_at_once(
    sim: Simulator, sim_transport: httpx.AsyncBaseTransport, clock: FakeClock
) -> None:
    async with running_gateway(demo_settings(), sim_transport, clock) as gateway:
        assert total(await gateway.query(QUERY)) == "50000"  # now in both caches
        ourvoice_fake(sim).balances["ourvoice-sn"] = Decimal("61000")
        clock.advance(6)
        assert total(await gateway.query(QUERY)) == "50000"  # fresh for 15 s
        refreshed = await gateway.query(REFRESH, {"ids": ["ourvoice-sn"]})
        assert total(refreshed, "refreshBalances") == "61000"
        assert refreshed["data"]["refreshBalances"]["complete"] is True
        assert sim.state.calls_to("ourvoice-sn", "balance") == 2
        assert total(await gateway.query(QUERY)) == "61000"  # the stored response is gone
        assert sim.state.calls_to("ourvoice-sn", "balance") == 2


async def test_refreshes_at_once_share_one_read_per_account(
    sim: Simulator,
    sim_transport: httpx.AsyncBaseTransport,
    clock: FakeClock,
    cache_url: str,
    namespace: str,
) -> None:
    settings = with_cache(demo_settings(), cache_url, namespace)
    ids = ["ourvoice-sn", "magma", "paymob-eg"]
    async with running_gateway(settings, sim_transport, clock) as gateway:
        await gateway.query(REFRESH, {"ids": ids})
        clock.advance(6)  # past the refresh window: the next refreshes read again
        answers = await asyncio.gather(*(gateway.query(REFRESH, {"ids": ids}) for _ in range(100)))
        assert {sim.state.calls_to(a, "balance") for a in ids} == {2}
        fetched = {
            r["fetchedAt"]
            for answer in answers
            for r in answer["data"]["refreshBalances"]["results"]
        }
        assert len(fetched) == 1  # one read each, at the same (injected) moment
        clock.advance(4)  # within 5 s of the last refresh: it stands
        await gateway.query(REFRESH, {"ids": ids})
        assert {sim.state.calls_to(a, "balance") for a in ids} == {2}


async def test_a_refresh_never_reads_more_often_than_the_quota_allows(
    sim: Simulator, sim_transport: httpx.AsyncBaseTransport, clock: FakeClock
) -> None:
    settings = with_account(demo_settings(), "magma", calls_per_day=4320)  # one read / 20 s
    async with running_gateway(settings, sim_transport, clock) as gateway:
        await gateway.query(REFRESH, {"ids": ["magma"]})
        clock.advance(10)
        answer = await gateway.query(REFRESH, {"ids": ["magma"]})
        (result,) = answer["data"]["refreshBalances"]["results"]
        assert result["freshnessLimit"] == {"code": "QUOTA"}
        assert sim.state.calls_to("magma", "balance") == 1


async def test_live_streams_see_a_refresh_at_once(
    sim: Simulator, sim_transport: httpx.AsyncBaseTransport, clock: FakeClock
) -> None:
    ticker = Ticker()  # never ticked: only the refresh can wake the stream
    async with (
        live_gateway(sim_transport, clock, ticker) as (url, _),
        httpx.AsyncClient(timeout=30) as http,
        stream(http, url, ["ourvoice-sn"]) as events,
    ):
        assert amount(await events.result()) == "50000"
        ourvoice_fake(sim).balances["ourvoice-sn"] = Decimal("72000")
        clock.advance(6)
        body = {"query": REFRESH, "variables": {"ids": ["ourvoice-sn"]}}
        assert (await http.post(f"{url}/graphql", json=body)).status_code == 200
        assert amount(await events.result()) == "72000"
    assert sim.state.calls_to("ourvoice-sn", "balance") == 2


async def test_refreshing_needs_its_own_scope(
    sim: Simulator, sim_transport: httpx.AsyncBaseTransport, clock: FakeClock
) -> None:
    reader = client("reader", "bgw_reader-key-0123456789abcdef", ("balances:read",), None)
    async with running_gateway(
        production(demo_settings(), reader), sim_transport, clock, "bgw_reader-key-0123456789abcdef"
    ) as gateway:
        answer = await gateway.query(REFRESH, {"ids": ["magma"]})
    assert answer["data"] is None
    assert answer["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert sim.state.calls_to("magma", "balance") == 0


async def test_a_refresh_the_provider_fails_says_its_answer_is_stale(
    sim: Simulator, sim_transport: httpx.AsyncBaseTransport, clock: FakeClock
) -> None:
    """Within the join window, too: a refresh asked for a new read, and the old one it got
    says why (STALE; `staleReason` has the failure)."""
    async with running_gateway(demo_settings(), sim_transport, clock) as gateway:
        await gateway.query(QUERY)
        sim.state.set_faults("ourvoice-sn", status=503)
        clock.advance(2)
        answer = await gateway.query(REFRESH, {"ids": ["ourvoice-sn"]})
    (result,) = answer["data"]["refreshBalances"]["results"]
    assert result["freshnessLimit"] == {"code": "STALE"}
