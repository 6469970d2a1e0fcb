"""A request served leaves no reference cycle behind: everything it made is freed when its
last reference goes, not by the cycle collector. A cycle per request (graphql-core's
executor holding helpers bound to itself held the whole request: context, tasks, ASGI
exchange) made full collections of tens of milliseconds several times a second under
load: the turns in which sheds waited past 50 ms (issue #24)."""

from __future__ import annotations

import gc
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

from gateway.simulator import Simulator
from tests.helpers import FakeClock, GatewayClient

QUERY = """{ balances { complete results { __typename
  ... on AccountBalance { stale balances { total { amount currency } } }
  ... on ProviderFailure { code } } } }"""
TOP_UP = """mutation($input: TopUpInput!) { topUp(input: $input) { __typename } }"""
# Types of the server's side (the test's own client, httpx, makes cycles of its own).
SERVER_SIDE = ("gateway", "graphql", "strawberry", "starlette", "asyncio", "_asyncio", "uvicorn")


@contextmanager
def cycles_made() -> Iterator[Counter[str]]:
    """What the cycle collector finds of the server's objects made inside the block."""
    found: Counter[str] = Counter()
    gc.collect()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        yield found
        gc.collect()
        for thing in gc.garbage:
            kind = type(thing)
            if kind.__module__.startswith(SERVER_SIDE):
                found[f"{kind.__module__}.{kind.__qualname__}"] += 1
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()


async def top_up(gw: GatewayClient, n: int) -> None:
    money = {
        "accountId": "ourvoice-sn",
        "amount": "5000",
        "paymentMethod": "MTN MOMO",
        "paymentReference": f"PAY-{n}",
        "idempotencyKey": f"cycles-{n}",
    }
    done = await gw.query(TOP_UP, {"input": money})
    assert done["data"]["topUp"]["__typename"] == "TopUpSucceeded", done


async def test_answers_read_cached_failed_and_top_ups_leave_no_cycle_behind(
    sim: Simulator, clock: FakeClock, gw: GatewayClient
) -> None:
    for n in range(2):  # documents parsed and validated, plans built: once per process
        assert (await gw.http.post("/graphql", json={"query": QUERY})).status_code == 200
        await top_up(gw, n)
    with cycles_made() as found:
        sim.state.set_faults("muda-ug", status=503)  # 3 attempts, then its circuit opens
        for n in range(2, 6):
            clock.advance(3600)  # each balance read again from its provider
            read = await gw.http.post("/graphql", json={"query": QUERY})
            cached = await gw.http.post("/graphql", json={"query": QUERY})
            assert read.status_code == cached.status_code == 200
            assert read.json()["data"]["balances"]["complete"] is False, read.text
            await top_up(gw, n)
    assert found == Counter()
