"""The balance cache through the real app: hits, expiry, stale-if-error, 401, single
flight, isolation between credentials — on the in-memory backend and on real Redis."""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import logging
from decimal import Decimal
from typing import Any

import httpx
import pytest
import redis

from gateway.cache.read_through import Freshness, ReadThroughCache
from gateway.cache.store import Store, open_store
from gateway.config.secret import Secret
from gateway.config.settings import Settings
from gateway.domain import Asset, AssetKind, Balance, Money
from gateway.observability.metrics import Metrics
from gateway.services.balances import BALANCES
from gateway.simulator import Simulator
from tests.helpers import (
    DelayTransport,
    FakeClock,
    GatewayClient,
    demo_settings,
    running_gateway,
    with_cache,
)

MAGMA = """{ balances(accountIds: ["magma"]) { complete results { __typename
  ... on AccountBalance { fetchedAt stale staleReason { code message retryAfterSeconds }
                          balances { id total { amount } } }
  ... on ProviderFailure { code retryAfterSeconds } } } }"""


def result(response: dict[str, Any]) -> dict[str, Any]:
    first: dict[str, Any] = response["data"]["balances"]["results"][0]
    return first


def settings_for(cache_url: str, namespace: str, **cache: Any) -> Settings:
    """The demo on this cache, the response cache off: every query reaches the balance cache."""
    return with_cache(demo_settings(), cache_url, namespace, response_cache=False, **cache)


@pytest.fixture
def cache_settings(cache_url: str, namespace: str) -> Settings:
    """Overrides the folder's: `gw` runs with the response cache off."""
    return settings_for(cache_url, namespace)


@pytest.fixture
def cache(store: Store, clock: FakeClock) -> ReadThroughCache:
    return ReadThroughCache(store, clock, Metrics())


def egp(amount: str) -> tuple[Balance, ...]:
    """One cash balance of `amount` EGP, as an adapter returns it."""
    money = Money(Decimal(amount), "EGP")
    return (Balance("x:1", Asset("EGP", "EGP", AssetKind.CASH), money, money),)


async def read_twice(
    gw: GatewayClient, clock: FakeClock, seconds: float
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Magma's balance read, then read again `seconds` later."""
    first = result(await gw.query(MAGMA))
    clock.advance(seconds)
    return first, result(await gw.query(MAGMA))


async def test_a_fresh_entry_is_served_without_asking_upstream(
    gw: GatewayClient, sim: Simulator, clock: FakeClock
) -> None:
    first, second = await read_twice(gw, clock, 14)
    assert sim.state.calls_to("magma", "balance") == 1
    assert second == first
    assert second["stale"] is False


async def test_an_expired_entry_is_fetched_again(
    gw: GatewayClient, sim: Simulator, clock: FakeClock
) -> None:
    first, second = await read_twice(gw, clock, 15)
    assert sim.state.calls_to("magma", "balance") == 2
    assert second["fetchedAt"] > first["fetchedAt"]


async def test_stale_if_error_inside_the_window_then_the_failure(
    gw: GatewayClient, sim: Simulator, clock: FakeClock
) -> None:
    fresh = result(await gw.query(MAGMA))
    assert fresh["staleReason"] is None
    for fault, code, retry_after in (
        ({"status": 503}, "UPSTREAM_UNAVAILABLE", None),
        ({"status": 429, "retry_after": "5"}, "UPSTREAM_RATE_LIMITED", 5),
        ({"malformed": True}, "UPSTREAM_BAD_RESPONSE", None),
    ):
        sim.state.set_faults("magma", **fault)
        clock.advance(20)
        stale = (await gw.query(MAGMA))["data"]["balances"]
        assert stale["complete"] is True  # a stale answer is still an answer
        assert stale["results"][0]["stale"] is True
        assert stale["results"][0]["fetchedAt"] == fresh["fetchedAt"]
        assert stale["results"][0]["balances"] == fresh["balances"]
        # ... and says why it is stale: the failure it stands in for.
        reason = stale["results"][0]["staleReason"]
        assert (reason["code"], reason["retryAfterSeconds"]) == (code, retry_after)
        assert reason["message"]
    clock.advance(300)  # now past fresh + stale
    failed = result(await gw.query(MAGMA))
    assert failed["__typename"] == "ProviderFailure"


async def test_401_after_a_warm_cache_returns_the_failure_and_drops_the_entry(
    gw: GatewayClient, sim: Simulator, clock: FakeClock
) -> None:
    await gw.query(MAGMA)
    clock.advance(20)
    sim.state.set_faults("magma", status=401)
    refused = result(await gw.query(MAGMA))
    sim.state.clear_faults()
    again = result(await gw.query(MAGMA))  # inside what was the stale window
    assert refused == {
        "__typename": "ProviderFailure",
        "code": "UPSTREAM_UNAUTHORIZED",
        "retryAfterSeconds": None,
    }
    assert again["__typename"] == "AccountBalance"
    assert sim.state.calls_to("magma", "balance") == 3


async def test_fresh_seconds_zero_asks_every_time(
    cache_url: str,
    namespace: str,
    sim: Simulator,
    sim_transport: httpx.AsyncBaseTransport,
    clock: FakeClock,
) -> None:
    settings = settings_for(cache_url, namespace, fresh_seconds=0)
    async with running_gateway(settings, sim_transport, clock) as gw:
        for _ in range(3):
            await gw.query(MAGMA)
    assert sim.state.calls_to("magma", "balance") == 3


async def test_100_concurrent_cold_requests_make_one_upstream_call(
    cache_settings: Settings,
    sim: Simulator,
    sim_transport: httpx.AsyncBaseTransport,
    clock: FakeClock,
) -> None:
    slow = DelayTransport(sim_transport, 0.05)  # all 100 are waiting together
    async with running_gateway(cache_settings, slow, clock) as gw:
        answers = await asyncio.gather(*(gw.query(MAGMA) for _ in range(100)))
    assert sim.state.calls_to("magma", "balance") == 1
    assert all(result(a)["__typename"] == "AccountBalance" for a in answers)


async def test_two_replicas_sharing_redis_make_one_upstream_call(
    redis_url: str,
    namespace: str,
    sim: Simulator,
    sim_transport: httpx.AsyncBaseTransport,
    clock: FakeClock,
) -> None:
    settings = settings_for(redis_url, namespace)
    slow = DelayTransport(sim_transport, 0.05)
    async with (
        running_gateway(settings, slow, clock) as a,
        running_gateway(settings, slow, clock) as b,
    ):
        answers = await asyncio.gather(*(gw.query(MAGMA) for _ in range(50) for gw in (a, b)))
    assert sim.state.calls_to("magma", "balance") == 1
    assert len({str(result(x)["balances"]) for x in answers}) == 1


async def test_a_replica_that_claims_after_another_filled_the_key_uses_the_fill(
    redis_url: str, namespace: str, clock: FakeClock
) -> None:
    """Found by two worker processes: replica B reads (nothing there), replica A fills the
    key and lets its marker go, then B takes the marker — and must not fetch again."""

    class LateClaim(Store):
        """B's store: its claim waits until A has filled the key."""

        def __init__(self, inner: Store, turn: asyncio.Event) -> None:
            vars(self).update(vars(inner))  # the same backend, connection pool and state
            self.turn, self.claiming = turn, asyncio.Event()

        async def claim(self, key: str, value: str, ttl_seconds: float) -> bool:
            self.claiming.set()
            await self.turn.wait()
            return await super().claim(key, value, ttl_seconds)

    a_filled = asyncio.Event()
    store_a, store_b = open_store(redis_url, namespace), open_store(redis_url, namespace)
    late = LateClaim(store_b, a_filled)
    calls = {"a": 0, "b": 0}

    def fetcher(name: str) -> Any:
        async def fetch() -> tuple[Balance, ...]:
            calls[name] += 1
            return egp("9")

        return fetch

    freshness = Freshness(60, 300)
    a = ReadThroughCache(store_a, clock, Metrics())
    b = ReadThroughCache(late, clock, Metrics())
    try:
        second = asyncio.ensure_future(b.read("k", "acct", freshness, fetcher("b"), BALANCES))
        await late.claiming.wait()  # B has read the key (empty) and is about to claim
        first = await a.read("k", "acct", freshness, fetcher("a"), BALANCES)
        a_filled.set()
        got = await second
    finally:
        await store_a.delete("k")
        await store_a.close()
        await store_b.close()
    assert calls == {"a": 1, "b": 0}
    assert got.value == first.value


async def test_same_account_id_with_other_credentials_never_shares_data(
    cache_settings: Settings, sim_transport: httpx.AsyncBaseTransport, clock: FakeClock
) -> None:
    """Two deployments (or a key rotation) name an account alike; their data stays apart."""
    query = """{ balances(accountIds: ["ourvoice-sn"]) { results {
      ... on AccountBalance { balances { total { amount } } } } } }"""
    senegal = cache_settings
    sn = senegal.accounts["ourvoice-sn"]
    ivory = dataclasses.replace(
        senegal,
        accounts={
            "ourvoice-sn": dataclasses.replace(
                sn, credentials={"api_key": Secret("demo-ourvoice-ci-key")}
            )
        },
    )
    for _ in range(2):  # cold, then warm
        async with (
            running_gateway(senegal, sim_transport, clock) as a,
            running_gateway(ivory, sim_transport, clock) as b,
        ):
            amount_a = result(await a.query(query))["balances"][0]["total"]["amount"]
            amount_b = result(await b.query(query))["balances"][0]["total"]["amount"]
        assert (amount_a, amount_b) == ("50000", "125750")


async def test_no_raw_secret_in_any_redis_key_or_value(
    redis_url: str, namespace: str, sim_transport: httpx.AsyncBaseTransport, clock: FakeClock
) -> None:
    settings = settings_for(redis_url, namespace)
    async with running_gateway(settings, sim_transport, clock) as gw:
        await gw.query("{ balances { complete } }")
    secrets = {s.reveal() for a in settings.accounts.values() for s in a.credentials.values()}
    client = redis.Redis.from_url(redis_url)
    try:
        keys = list(client.scan_iter(match=f"{namespace}*"))
        assert len(keys) >= 5
        blob = b"".join(k + (client.get(k) or b"") for k in keys if client.type(k) == b"string")
    finally:
        client.close()
    assert not any(secret.encode() in blob for secret in secrets)
    assert b"demo-" not in blob


async def test_every_key_written_follows_the_grammar_in_cache_keys(
    redis_url: str, namespace: str, sim_transport: httpx.AsyncBaseTransport, clock: FakeClock
) -> None:
    """Balances, histories with a caller-typed filter, a top-up, responses, generations,
    call quotas and client buckets: every key names an account (and its credentials' digest) or a
    digest — never a secret, never what the caller typed."""
    from gateway.cache import keys
    from tests.helpers import FULL_KEY, TOP_UP, production, topup

    settings = production(with_cache(demo_settings(), redis_url, namespace))
    typed = "caller-typed-reference-42"
    history = """query($f: TransactionFilter) { transactions(accountId: "paymob-eg", filter: $f)
      { __typename } }"""
    async with running_gateway(settings, sim_transport, clock, key=FULL_KEY) as gw:
        await gw.query("{ balances { complete } }")
        await gw.query("{ balances { complete } }")  # a response-cache hit
        await gw.query(history, {"f": {"reference": typed, "types": ["card"]}})
        await gw.query(TOP_UP, topup())
    client = redis.Redis.from_url(redis_url)
    try:
        prefix = f"{namespace}:v1:".encode()
        written = [k.removeprefix(prefix).decode() for k in client.scan_iter(match=prefix + b"*")]
    finally:
        client.close()
    kinds = {k.split(":")[0] for k in written}
    assert {"balance", "tx", "gen", "response", "budget", "rate"} <= kinds
    assert [k for k in written if not keys.GRAMMAR.fullmatch(k)] == []
    assert not any(typed in k or "card" in k for k in written)


async def test_a_value_mutated_by_one_reader_is_not_seen_by_the_next(
    store: Store, cache: ReadThroughCache
) -> None:
    original = egp("10.50")

    async def fetch() -> tuple[Balance, ...]:
        return original

    fresh = Freshness(15, 300)
    first = await cache.read("k", "x", fresh, fetch, BALANCES)
    object.__setattr__(first.value[0], "total", Money(Decimal("999"), "EGP"))  # a careless reader
    second = await cache.read("k", "x", fresh, fetch, BALANCES)
    await store.delete("k")
    assert second.value[0].total.amount == Decimal("10.50")
    assert second.value[0] is not first.value[0]


async def test_an_entry_of_another_format_version_is_a_miss_not_an_error(
    store: Store, cache: ReadThroughCache, clock: FakeClock
) -> None:
    import json as json_module

    from gateway.cache.codec import decode_balances, encode_balances

    fresh = egp("10.50")
    written = json_module.loads(encode_balances(fresh))
    written["v"] = 999  # what a later (or earlier) release wrote
    assert decode_balances(json_module.dumps(written)) is None
    await store.set("k", f"{clock()!r}|{json_module.dumps(written)}", 60)
    fetched: list[int] = []

    async def fetch() -> tuple[Balance, ...]:
        fetched.append(1)
        return fresh

    got = await cache.read("k", "acct", Freshness(60, 300), fetch, BALANCES)
    assert fetched == [1]  # a miss: fetched upstream, not served, not an error
    assert got.value == fresh


async def test_a_burst_of_concurrent_operations_waits_for_a_connection_never_fails(
    redis_url: str, namespace: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Found by two worker processes under 100 concurrent queries: 4 accounts × 50
    requests is more operations at once than the Redis client's pool holds. They must wait
    for a connection — a failure reads as "no cache", and every worker then asks every
    upstream (and spends its quota). A pool of 4 makes 400 operations wait for certain; the
    bound on one operation is set far above any machine's pace, so no clock decides."""
    store = open_store(redis_url, namespace, timeout_seconds=60.0, max_connections=4)
    try:
        await store.set("burst", "value", 60)
        with caplog.at_level(logging.WARNING, logger="gateway.cache.store"):
            values = await asyncio.gather(*(store.get("burst") for _ in range(400)))
    finally:
        await store.delete("burst")
        await store.close()
    assert values == ["value"] * 400
    assert not [r for r in caplog.records if "failing" in r.getMessage()]


async def test_a_read_whose_every_waiter_left_fails_without_a_never_retrieved_report(
    cache: ReadThroughCache, caplog: pytest.LogCaptureFixture
) -> None:
    """The waiters are handed the fill's end a few at a time (`cache/handout.py`); one that
    left before it ended leaves nothing on it, so the cache reads the error itself."""
    asked, answer = asyncio.Event(), asyncio.Event()

    async def fetch() -> tuple[Balance, ...]:
        asked.set()
        await answer.wait()
        raise ValueError("the read failed after everyone left")

    reader = asyncio.create_task(cache.read("k", "acct", Freshness(60, 300), fetch, BALANCES))
    await asked.wait()
    reader.cancel()
    with pytest.raises(asyncio.CancelledError):
        await reader
    answer.set()
    for _ in range(5):
        await asyncio.sleep(0)
    gc.collect()
    assert "never retrieved" not in caplog.text
