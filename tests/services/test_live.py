"""Live balances over Server-Sent Events (`/graphql/stream`) on a real server: a snapshot,
then an event per change (an amount, failing, recovering), a top-up pushed at once, one
upstream read per account however many subscribers, heartbeats, limits, streams ended with
a retry hint when the process stops, and a slow subscriber dropped, never buffered.

Time is injected: the clock is a FakeClock and the streams' waits (between reads, and
between heartbeats) end when the test ticks."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import json
import logging
import tracemalloc
from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from typing import Any

import httpx
import pytest

from gateway.app import create_app
from gateway.config.settings import LiveSettings, Settings
from gateway.domain import ProviderFailure
from gateway.services.live import QUEUE_SIZE, BalanceWatch, Closing, SlowConsumer
from gateway.simulator import Simulator
from tests.helpers import (
    SUBSCRIBE,
    FakeClock,
    Ticker,
    demo_settings,
    no_sleep,
    ourvoice_fake,
    sample,
    serving,
)

STREAM = {"accept": "text/event-stream"}


class Events:
    """One open stream's events, read as they come."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self._lines = response.aiter_lines()
        self.heartbeats = 0

    async def next(self) -> tuple[str, Any]:
        name, data, retry = "", "", None
        async with asyncio.timeout(20):  # a bound on a wait for the server, not a timing test
            async for line in self._lines:
                if line == ":":
                    self.heartbeats += 1
                elif line.startswith("event: "):
                    name = line[len("event: ") :]
                elif line.startswith("data: "):
                    data = line[len("data: ") :]
                elif line.startswith("retry: "):
                    retry = int(line[len("retry: ") :])
                elif line == "" and (name or retry is not None):
                    if retry is not None and not name:
                        return "retry", retry
                    return name, json.loads(data) if data else None
        raise AssertionError("the stream ended")

    async def result(self) -> dict[str, Any]:
        name, payload = await self.next()
        assert name == "next", (name, payload)
        update: dict[str, Any] = payload["data"]["balanceUpdates"]
        return update


def amount(update: dict[str, Any]) -> str:
    value: str = update["balances"][0]["total"]["amount"]
    return value


@contextlib.asynccontextmanager
async def live_gateway(
    sim_transport: httpx.AsyncBaseTransport,
    clock: FakeClock,
    ticker: Ticker,
    change: Callable[[Settings], Settings] = lambda s: s,
) -> AsyncIterator[tuple[str, Any]]:
    app = create_app(
        change(demo_settings()),
        transport=sim_transport,
        clock=clock,
        sleep=no_sleep,
        live_sleep=ticker.sleep,
    )
    async with serving(app) as url:
        yield url, app


@pytest.fixture
def ticker() -> Ticker:
    return Ticker()


@pytest.fixture
async def live(
    sim_transport: httpx.AsyncBaseTransport, clock: FakeClock, ticker: Ticker
) -> AsyncIterator[tuple[str, Any]]:
    """The demo served on a free port, its live streams waiting on `ticker`: (url, app)."""
    async with live_gateway(sim_transport, clock, ticker) as served:
        yield served


@pytest.fixture
async def client(live: tuple[str, Any]) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client for `live` (closed before it stops)."""
    async with httpx.AsyncClient(timeout=30) as client:
        yield client


@contextlib.asynccontextmanager
async def stream(http: httpx.AsyncClient, url: str, ids: list[str]) -> AsyncIterator[Events]:
    body = {"query": SUBSCRIBE, "variables": {"ids": ids}}
    async with http.stream("POST", f"{url}/graphql/stream", json=body, headers=STREAM) as r:
        assert r.status_code == 200, await r.aread()
        assert r.headers["content-type"].startswith("text/event-stream")
        yield Events(r)


def balance_reads(sim: Simulator, account: str) -> int:
    return sim.state.calls_to(account, "balance")


async def test_a_snapshot_then_each_change_failure_recovery_and_top_up(
    sim: Simulator,
    clock: FakeClock,
    ticker: Ticker,
    live: tuple[str, Any],
    client: httpx.AsyncClient,
) -> None:
    url, _ = live
    async with stream(client, url, ["ourvoice-sn", "paymob-eg"]) as events:
        snapshot = {u["account"]["id"]: u for u in [await events.result(), await events.result()]}
        assert amount(snapshot["ourvoice-sn"]) == "50000"

        ourvoice_fake(sim).balances["ourvoice-sn"] = Decimal("61000")
        clock.advance(16)  # past the fresh window: the next read asks upstream
        ticker.tick()
        changed = await events.result()
        assert (changed["account"]["id"], amount(changed)) == ("ourvoice-sn", "61000")

        sim.state.set_faults("paymob-eg", status=503)
        clock.advance(16)
        ticker.tick()
        failing = await events.result()  # served stale: it is failing
        assert (failing["account"]["id"], failing["stale"]) == ("paymob-eg", True)
        sim.state.clear_faults()
        clock.advance(16)
        ticker.tick()
        recovered = await events.result()
        assert (recovered["account"]["id"], recovered["stale"]) == ("paymob-eg", False)

        top_up = """mutation { topUp(input: {accountId: "ourvoice-sn", amount: "5000",
          paymentMethod: "MTN MOMO", paymentReference: "P-LIVE", idempotencyKey: "live-1"})
          { __typename } }"""
        answer = await client.post(f"{url}/graphql", json={"query": top_up})
        assert answer.json()["data"]["topUp"]["__typename"] == "TopUpSucceeded"
        pushed = await events.result()  # without a tick: the top-up woke the watcher
        assert (pushed["account"]["id"], amount(pushed)) == ("ourvoice-sn", "66000")
        assert events.heartbeats >= 3  # each tick without an event is a heartbeat
        scraped = (await client.get(f"{url}/metrics")).text
    assert sample(scraped, "gateway_live_streams") == 1
    assert sample(scraped, "gateway_live_watchers") == 2


async def test_twenty_subscribers_make_one_upstream_read_per_account_per_window(
    sim: Simulator, clock: FakeClock, ticker: Ticker, live: tuple[str, Any]
) -> None:
    url, _ = live
    async with (
        httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=60)) as http,
        contextlib.AsyncExitStack() as stack,
    ):
        before = balance_reads(sim, "magma")
        streams = [await stack.enter_async_context(stream(http, url, ["magma"])) for _ in range(20)]
        snapshots = await asyncio.gather(*(s.result() for s in streams))
        first_window = balance_reads(sim, "magma") - before
        for _ in range(3):
            ticker.tick()  # reads within the fresh window: the cache answers
        await asyncio.sleep(0)
        clock.advance(16)
        ticker.tick()  # the next window: one read for everybody, no change, no event
        for _ in range(10_000):  # the read runs on this event loop: let it
            if balance_reads(sim, "magma") - before >= 2:
                break
            await asyncio.sleep(0)
        second_window = balance_reads(sim, "magma") - before
    assert {s["account"]["id"] for s in snapshots} == {"magma"} and len(snapshots) == 20
    assert first_window == 1
    assert second_window == 2


async def test_limits_wrong_accept_and_what_may_stream(
    sim_transport: httpx.AsyncBaseTransport, clock: FakeClock, ticker: Ticker
) -> None:
    def two_per_client(settings: Settings) -> Settings:
        return dataclasses.replace(settings, live=LiveSettings(max_streams_per_client=2))

    top_up = (
        'mutation { topUp(input: {accountId: "x", amount: "1", paymentMethod: "m", '
        'paymentReference: "r", idempotencyKey: "k"}) { __typename } }'
    )
    async with (
        live_gateway(sim_transport, clock, ticker, two_per_client) as (url, _),
        httpx.AsyncClient(timeout=30) as http,
    ):

        async def send(body: dict[str, Any], headers: dict[str, str] = STREAM) -> httpx.Response:
            return await http.post(f"{url}/graphql/stream", json=body, headers=headers)

        not_events = await send({"query": SUBSCRIBE}, {})
        mutation = await send({"query": top_up})
        query = await send({"query": "{ __typename }"})
        unknown = await send({"query": SUBSCRIBE, "variables": {"ids": ["nope"]}})
        async with stream(http, url, ["magma"]), stream(http, url, ["magma"]):
            third = await send({"query": SUBSCRIBE})
            another_query = await send({"query": "{ __typename }"})  # not a live stream
    assert not_events.status_code == 406
    assert mutation.status_code == 400
    assert query.text == (
        'event: next\ndata: {"data":{"__typename":"Query"}}\n\nevent: complete\ndata: \n\n'
    )
    assert '"code":"NOT_FOUND"' in unknown.text
    assert unknown.text.endswith("event: complete\ndata: \n\n")
    assert third.status_code == 429
    assert third.json()["errors"][0]["extensions"]["code"] == "RATE_LIMITED"
    assert another_query.status_code == 200


async def test_streams_end_with_a_retry_hint_when_the_process_stops(
    live: tuple[str, Any], client: httpx.AsyncClient
) -> None:
    url, app = live
    async with stream(client, url, ["magma"]) as events:
        await events.result()
        app.state.readiness.draining.start()  # what SIGTERM does
        ending = [await events.next(), await events.next()]
        refused = await client.post(
            f"{url}/graphql/stream", json={"query": SUBSCRIBE}, headers=STREAM
        )
    assert ending == [("retry", 2000), ("complete", None)]
    assert refused.status_code == 429  # no new stream while stopping: go elsewhere


class ChangingService:
    """Every read a new amount (as a service would give for a busy account)."""

    def __init__(self, result: ProviderFailure) -> None:
        self.reads = 0
        self.result = result

    def fresh_seconds(self, account_id: str) -> float:
        return 15.0

    async def balances(self, account_ids: list[str]) -> list[ProviderFailure]:
        self.reads += 1
        return [dataclasses.replace(self.result, code=f"CODE_{self.reads}")]


def changing_watch(ticker: Ticker) -> tuple[ChangingService, BalanceWatch]:
    """A watch over one account whose every read is a change, its waits on `ticker`."""
    from gateway.domain import AccountInfo, Capability, ProviderKind

    info = AccountInfo("a", ProviderKind("muda"), "A", (Capability.BALANCE,))
    service = ChangingService(ProviderFailure(info, "X", "m", True))
    watch = BalanceWatch(service, ticker.sleep, max_streams=10, max_streams_per_client=10)  # type: ignore[arg-type]
    return service, watch


async def more_reads_than_a_queue_holds(ticker: Ticker) -> None:
    for _ in range(QUEUE_SIZE + 5):  # the watcher reads; nobody reads its results
        ticker.tick()
        for _ in range(5):
            await asyncio.sleep(0)


async def test_a_subscriber_that_falls_behind_is_dropped_and_its_watcher_stops(
    ticker: Ticker,
) -> None:
    service, watch = changing_watch(ticker)
    async with watch.subscribe("c", ["a"]) as results:
        await more_reads_than_a_queue_holds(ticker)
        with pytest.raises(SlowConsumer):
            async for _ in results:
                pass
    reads = service.reads
    ticker.tick()
    for _ in range(5):
        await asyncio.sleep(0)
    assert reads > QUEUE_SIZE and service.reads == reads  # no subscriber: no more reads


async def test_a_stream_its_client_abandons_is_logged_and_counted_cancelled_not_ok(
    ticker: Ticker,
    live: tuple[str, Any],
    client: httpx.AsyncClient,
    caplog: pytest.LogCaptureFixture,
) -> None:
    url, _ = live
    caplog.set_level(logging.INFO, logger="gateway.access")

    def outcomes() -> list[str]:
        lines = [r for r in caplog.records if r.name == "gateway.access"]
        return [r.access["outcome"] for r in lines if r.access["path"] == "/graphql/stream"]  # type: ignore[attr-defined]

    async with stream(client, url, ["ourvoice-sn"]) as events:
        await events.result()  # the snapshot; then the client goes away
    async with asyncio.timeout(20):  # a bound on the server noticing, not a timing test
        while not outcomes():
            ticker.tick()  # the stream's next wait ends, and finds nobody reading
            await asyncio.sleep(0.01)
    scraped = (await client.get(f"{url}/metrics")).text
    assert outcomes() == ["cancelled"]
    counted = sample(
        scraped, "gateway_event_streams_total", operation_type="subscription", outcome="cancelled"
    )
    assert counted == 1


async def test_single_connection_mode_reservation_stream_operations_and_their_refusals(
    live: tuple[str, Any],
) -> None:
    """graphql-sse's single connection mode: PUT reserves (201, a token), GET opens the
    stream once, POST runs an operation on it (202; `next` {id, payload}, `complete` {id}),
    DELETE stops one; every misuse has its own answer."""
    url, app = live
    token_header = "x-graphql-event-stream-token"
    async with httpx.AsyncClient(timeout=30, base_url=url) as http:
        reserved = await http.put("/graphql/stream")
        assert reserved.status_code == 201
        token = reserved.text
        auth = {token_header: token}
        unknown = await http.post(
            "/graphql/stream", json={"query": "{ __typename }"}, headers={token_header: "nope"}
        )
        async with http.stream("GET", "/graphql/stream", headers={**auth, **STREAM}) as opened:
            assert opened.status_code == 200
            again = await http.get("/graphql/stream", params={"token": token}, headers=STREAM)
            events = Events(opened)
            no_id = await http.post(
                "/graphql/stream", json={"query": "{ __typename }"}, headers=auth
            )
            query = {"query": "{ __typename }", "extensions": {"operationId": "q1"}}
            ran = await http.post("/graphql/stream", json=query, headers=auth)
            assert ran.status_code == 202
            assert await events.next() == (
                "next",
                {"id": "q1", "payload": {"data": {"__typename": "Query"}}},
            )
            assert await events.next() == ("complete", {"id": "q1"})
            watch = {
                "query": SUBSCRIBE,
                "variables": {"ids": ["ourvoice-sn"]},
                "extensions": {"operationId": "s1"},
            }
            assert (await http.post("/graphql/stream", json=watch, headers=auth)).status_code == 202
            name, snapshot = await events.next()
            assert (name, snapshot["id"]) == ("next", "s1")
            assert snapshot["payload"]["data"]["balanceUpdates"]["account"]["id"] == "ourvoice-sn"
            twice = await http.post("/graphql/stream", json=watch, headers=auth)
            stopped = await http.delete(
                "/graphql/stream", params={"operationId": "s1"}, headers=auth
            )
            assert stopped.status_code == 200
        lapsed = (await http.put("/graphql/stream")).text
        app.state.events.single.monotonic = lambda: 10**9  # far past the reservation's life
        late = await http.get("/graphql/stream", params={"token": lapsed}, headers=STREAM)
    assert unknown.status_code == 404
    assert again.status_code == 409  # one stream per reservation
    assert no_id.status_code == 400 and "operationId" in no_id.text
    assert twice.status_code == 409  # that id is running
    assert late.status_code == 404


async def test_a_long_subscription_holds_the_same_memory_after_a_thousand_events(
    sim: Simulator,
    clock: FakeClock,
    ticker: Ticker,
    live: tuple[str, Any],
    client: httpx.AsyncClient,
) -> None:
    """A stream that lasts — a dashboard left open for a week — costs what it cost after
    its first events: graphql-core's per-event executor shared the subscription's memo of
    field groups, and every event added one (≈ 400 bytes an event, for as long as the
    stream lasted)."""
    url, app = live
    held: list[int] = []
    async with stream(client, url, ["ourvoice-sn"]) as events:
        await events.result()
        tracemalloc.start()
        try:
            for n in range(1, 1101):
                ourvoice_fake(sim).balances["ourvoice-sn"] += 1
                clock.advance(16)  # past the fresh window: the next read asks upstream
                ticker.tick()
                assert amount(await events.result()) == str(Decimal(50000 + n))
                if n in (100, 1100):
                    await app.state.recorder.flush()  # the reads queued for the history
                    gc.collect()  # written: a writer behind on a busy machine holds more
                    held.append(tracemalloc.get_traced_memory()[0])
        finally:
            tracemalloc.stop()
    # 1,000 events: ≈ 390 kB with the leak, 40–60 kB without (the test's own client and
    # simulator, what is in flight at each count)
    assert held[1] - held[0] < 150_000, held


async def test_a_subscriber_told_the_process_stops_is_not_then_told_it_fell_behind(
    ticker: Ticker,
) -> None:
    """`close_all` ends every subscriber with `Closing` (reconnect elsewhere); results that
    keep coming while its reader is slow neither pile up behind it nor replace it."""
    service, watch = changing_watch(ticker)
    async with watch.subscribe("c", ["a"]) as results:
        watch.close_all()
        await more_reads_than_a_queue_holds(ticker)
        with pytest.raises(Closing):
            async for _ in results:
                pass
    assert service.reads > QUEUE_SIZE
