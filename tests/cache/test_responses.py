"""The whole-response cache: what it serves, what it never holds, and invalidation."""

from __future__ import annotations

from decimal import Decimal

import httpx
import pytest

from gateway.cache.responses import CachedRequest
from gateway.simulator import Simulator
from tests.helpers import (
    FakeClock,
    GatewayClient,
    demo_settings,
    ourvoice_fake,
    running_gateway,
)

QUERY = """query($ids: [ID!]) { balances(accountIds: $ids) { complete results { __typename
  ... on AccountBalance { stale balances { total { amount } } } } } }"""
HITS = "gateway_response_cache_events_total"


async def hits(gw: GatewayClient) -> float:
    return await gw.metric(HITS, event="hit")


def amount(answer: dict) -> str:  # type: ignore[type-arg]
    result: str = answer["data"]["balances"]["results"][0]["balances"][0]["total"]["amount"]
    return result


async def test_an_identical_query_is_answered_from_the_response_cache(
    sim_transport: httpx.AsyncBaseTransport, clock: FakeClock
) -> None:
    async with running_gateway(demo_settings(), sim_transport, clock) as gw:
        first = await gw.post(QUERY, {"ids": ["magma"]})
        second = await gw.post(QUERY, {"ids": ["magma"]})
        other = await gw.post(QUERY, {"ids": ["muda-ug"]})  # other variables: another entry
        assert second.content == first.content
        assert await hits(gw) == 1
        assert other.content != first.content
        clock.advance(15)  # its balances are no longer fresh, nor is the response
        await gw.post(QUERY, {"ids": ["magma"]})
        assert await hits(gw) == 1


async def test_errors_failures_and_stale_answers_are_never_cached(
    sim: Simulator, sim_transport: httpx.AsyncBaseTransport, clock: FakeClock
) -> None:
    async with running_gateway(demo_settings(), sim_transport, clock) as gw:
        for _ in range(2):
            await gw.query(QUERY, {"ids": ["magma", "nope"]})  # NOT_FOUND error
        sim.state.set_faults("muda-ug", status=503)
        await gw.query(QUERY, {"ids": ["muda-ug"]})  # a ProviderFailure (3 attempts)
        sim.state.clear_faults()
        recovered = await gw.query(QUERY, {"ids": ["muda-ug"]})
        await gw.query(QUERY, {"ids": ["paymob-eg"]})
        clock.advance(20)
        sim.state.set_faults("paymob-eg", status=503)
        for _ in range(2):
            stale = await gw.query(QUERY, {"ids": ["paymob-eg"]})
        assert await hits(gw) == 0
    assert recovered["data"]["balances"]["results"][0]["__typename"] == "AccountBalance"
    assert stale["data"]["balances"]["results"][0]["stale"] is True


async def test_invalidate_makes_the_next_identical_query_see_the_new_balance(
    gw: GatewayClient, sim: Simulator
) -> None:
    assert amount(await gw.query(QUERY, {"ids": ["ourvoice-sn"]})) == "50000"
    ourvoice_fake(sim).balances["ourvoice-sn"] = Decimal("65000")
    assert amount(await gw.query(QUERY, {"ids": ["ourvoice-sn"]})) == "50000"  # cached
    await gw.app.state.service.invalidate("ourvoice-sn")
    assert amount(await gw.query(QUERY, {"ids": ["ourvoice-sn"]})) == "65000"
    # …including responses that held it among other accounts.
    await gw.query(QUERY, {"ids": ["magma", "ourvoice-sn"]})
    ourvoice_fake(sim).balances["ourvoice-sn"] = Decimal("70000")
    await gw.app.state.service.invalidate("ourvoice-sn")
    both = await gw.query(QUERY, {"ids": ["magma", "ourvoice-sn"]})
    assert both["data"]["balances"]["results"][1]["balances"][0]["total"]["amount"] == "70000"


@pytest.mark.parametrize(
    "body",
    [
        b'{"query": "mutation { topUp }"}',
        b'{"query": "subscription { x }"}',
        b'{"query": "query A { a } mutation B { b }", "operationName": "A"}',
        b'{"query": 5}',
        b'[{"query": "{ a }"}]',
        b'{"query": "{ a }", "variables": [1]}',
        b"not json",
    ],
)
def test_only_plain_query_documents_are_cacheable(body: bytes) -> None:
    assert CachedRequest.of(body) is None


def test_the_key_is_the_body_as_sent() -> None:
    """A dashboard repeats its request byte for byte: its body is the key, unparsed on a
    hit; the same request written otherwise is another entry (answered the whole way)."""
    a = CachedRequest.of(b'{"query": "{ a }", "variables": {"x": 1, "y": 2}}')
    again = CachedRequest.of(b'{"query": "{ a }", "variables": {"x": 1, "y": 2}}')
    reordered = CachedRequest.of(b'{"query": "{ a }", "variables": {"y": 2, "x": 1}}')
    assert a == again and a is not None
    assert reordered != a
