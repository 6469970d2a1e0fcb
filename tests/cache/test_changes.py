"""Live streams on every replica see a change made on another at once (Redis pub/sub on
the namespace's `changed` channel): two in-process replicas share Redis and the simulator,
a subscriber on B, a refresh or a top-up on A — B's stream has the new value without its
poll (its injected sleep is never ticked). Redis restarted under them: both keep serving,
and B subscribes again. In memory nothing is published (and nothing is needed: one process).

Two replica processes behind nginx: tests/system/test_fleet.py."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from typing import Any

import httpx
import pytest

from gateway.cache import keys
from gateway.cache.changes import ChangeFeed, parse, wait_after
from gateway.cache.store import open_store
from gateway.config.settings import Settings
from gateway.simulator import Simulator
from tests.cache.conftest import RedisProcess
from tests.helpers import TOP_UP, FakeClock, Ticker, ourvoice_fake, topup, with_cache
from tests.services.test_live import Events, amount, live_gateway, stream
from tests.services.test_refresh import REFRESH

BOUND_SECONDS = 20  # a bound on waiting for the servers, not a timing test


@contextlib.asynccontextmanager
async def two_replicas(
    sim_transport: httpx.AsyncBaseTransport, clock: FakeClock, url: str, namespace: str
) -> AsyncIterator[tuple[Any, Any, Ticker]]:
    """Replicas A and B of the demo on one cache, each with its subscription confirmed:
    (A's url, B's url and app, B's live streams' ticker: never ticked unless a test does)."""

    def shared(settings: Settings) -> Settings:
        return with_cache(settings, url, namespace)

    b_ticker = Ticker()
    async with (
        live_gateway(sim_transport, clock, Ticker(), shared) as (a_url, a_app),
        live_gateway(sim_transport, clock, b_ticker, shared) as (b_url, b_app),
    ):
        async with asyncio.timeout(BOUND_SECONDS):
            await a_app.state.service.changes.subscribed.wait()
            await b_app.state.service.changes.subscribed.wait()
        yield a_url, (b_url, b_app), b_ticker


Replicas = tuple[Any, Any, Ticker]


@pytest.fixture
async def on_redis(
    sim_transport: httpx.AsyncBaseTransport, clock: FakeClock, redis_url: str, namespace: str
) -> AsyncIterator[Replicas]:
    """Two replicas on the shared Redis, under this test's namespace."""
    async with two_replicas(sim_transport, clock, redis_url, namespace) as replicas:
        yield replicas


@pytest.fixture
async def on_own_redis(
    own_redis: RedisProcess, sim_transport: httpx.AsyncBaseTransport, clock: FakeClock
) -> AsyncIterator[Replicas]:
    """Two replicas on a redis-server of this test's own (`own_redis`, which it may stop)."""
    url = f"redis://127.0.0.1:{own_redis.port}/0"
    async with two_replicas(sim_transport, clock, url, "changes") as replicas:
        yield replicas


async def post(http: httpx.AsyncClient, url: str, query: str, variables: dict[str, Any]) -> Any:
    answer = await http.post(f"{url}/graphql", json={"query": query, "variables": variables})
    assert answer.status_code == 200, answer.text
    return answer.json()["data"]


async def test_a_refresh_and_a_top_up_on_one_replica_reach_the_other_replicas_streams_at_once(
    sim: Simulator, clock: FakeClock, on_redis: Replicas
) -> None:
    a, (b, _), _ = on_redis
    async with (
        httpx.AsyncClient(timeout=30) as http,
        stream(http, b, ["ourvoice-sn"]) as events,
    ):
        assert amount(await events.result()) == "50000"
        ourvoice_fake(sim).balances["ourvoice-sn"] = Decimal("72000")
        clock.advance(6)  # past the refresh window, well within B's 15 s poll
        refreshed = await post(http, a, REFRESH, {"ids": ["ourvoice-sn"]})
        assert refreshed["refreshBalances"]["complete"] is True
        assert amount(await events.result()) == "72000"  # B never polled: it was told
        paid = await post(http, a, TOP_UP, topup("changes-1"))
        assert paid["topUp"]["__typename"] == "TopUpSucceeded"
        assert amount(await events.result()) == "77000"
    # the first read, the refresh, and the read after the top-up: B's re-reads were cached
    assert sim.state.calls_to("ourvoice-sn", "balance") == 3


async def until(condition: Callable[[], bool], tick: Callable[[], None]) -> None:
    """Tick (the injected sleep between attempts) until `condition` holds."""
    async with asyncio.timeout(BOUND_SECONDS):
        while not condition():
            tick()
            await asyncio.sleep(0.01)


async def test_redis_restarted_the_replicas_keep_serving_and_subscribe_again(
    own_redis: RedisProcess,
    on_own_redis: Replicas,
    sim: Simulator,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    a, (b, b_app), b_ticker = on_own_redis
    async with (
        httpx.AsyncClient(timeout=30) as http,
        stream(http, b, ["ourvoice-sn"]) as events,
    ):
        feed: ChangeFeed = b_app.state.service.changes
        assert amount(await events.result()) == "50000"
        own_redis.stop()
        await until(lambda: not feed.subscribed.is_set(), lambda: None)
        served = await post(http, b, "{ balances { complete } }", {})
        assert served["balances"]["complete"] is True  # from the upstreams, at once
        own_redis.start()
        await until(feed.subscribed.is_set, b_ticker.tick)  # its wait ends when ticked
        ourvoice_fake(sim).balances["ourvoice-sn"] = Decimal("64000")
        clock.advance(6)
        await post(http, a, REFRESH, {"ids": ["ourvoice-sn"]})
        assert amount(await next_change(events, "50000")) == "64000"
    said = [r.message for r in caplog.records if r.name == "gateway.cache.changes"]
    # once per replica, not per attempt (B tried on every tick; A, never ticked, waits)
    assert len([m for m in said if "subscription failed" in m]) == 2
    assert said.count("balance changes: subscribed to Redis again") == 1


async def next_change(events: Events, old: str) -> dict[str, Any]:
    """The next result with another amount than `old` (B's ticks while Redis was away may
    have re-read the same balance: no event then; a stale one would say `stale`)."""
    while True:
        update = await events.result()
        if amount(update) != old and not update["stale"]:
            return update


async def test_a_replica_does_not_hear_its_own_changes_nor_a_message_naming_nothing() -> None:
    assert parse("abc magma", "abc") is None
    assert parse("abc", "def") is None
    assert parse("abc magma", "def") == "magma"
    assert [wait_after(n) for n in (1, 2, 3, 8, 50)] == [0.5, 1.0, 2.0, 30.0, 30.0]


async def test_in_memory_nothing_is_published_and_the_feed_ends_at_once() -> None:
    store = open_store("memory://", "changes")
    feed = ChangeFeed(store, Ticker().sleep)
    await feed.announce("magma")  # no channel, no error
    await feed.run()  # returns: nothing to hear
    with pytest.raises(ValueError, match="no subscriptions"):
        async with store.subscription(keys.CHANGED):
            pass
    assert not feed.subscribed.is_set()
