"""Per-account resilience: retries inside the deadline, Retry-After, breaker, bulkhead,
budgets. Time is the injected clock; waits go through an injected sleep that records."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import pytest

from gateway.cache.store import open_store
from gateway.clock import request_deadline
from gateway.errors import ErrorCode, UpstreamError
from gateway.providers.muda import Muda
from gateway.simulator import Simulator
from gateway.upstream.breaker import BreakerState, CircuitBreaker
from gateway.upstream.client import UpstreamClient
from gateway.upstream.quota import CallLimits
from tests.helpers import FakeClock, demo_accounts, demo_settings, make_channel

ACCOUNT = demo_accounts()["magma"]
URL = "http://upstream/v1/misc/balance"


class Script:
    """A transport answering from a list of statuses (or exceptions), counting calls."""

    def __init__(self, *steps: int | tuple[int, dict[str, str]] | type[Exception]) -> None:
        self.steps: Iterator[int | tuple[int, dict[str, str]] | type[Exception]] = iter(steps)
        self.calls = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.calls += 1
        step = next(self.steps)
        if isinstance(step, type):
            raise step("scripted", request=request)  # type: ignore[call-arg]
        status, headers = step if isinstance(step, tuple) else (step, {})
        return httpx.Response(status, headers=headers, content=b"{}")


class Sleeps(list[float]):
    async def __call__(self, seconds: float) -> None:
        self.append(seconds)


def channel(script: Script, clock: FakeClock, sleeps: Sleeps, **options: object):  # type: ignore[no-untyped-def]
    http = UpstreamClient(httpx.MockTransport(script), wall_clock=clock)
    return make_channel(ACCOUNT, http, clock, sleep=sleeps, **options)  # type: ignore[arg-type]


def behind_a_breaker(script: Script, clock: FakeClock, sleeps: Sleeps):  # type: ignore[no-untyped-def]
    """A channel behind a breaker that opens after 5 failures, for 30 s; and the breaker."""
    breaker = CircuitBreaker(failure_threshold=5, cooldown_seconds=30, clock=clock)
    return breaker, channel(script, clock, sleeps, breaker=breaker)


async def test_reads_are_retried_inside_the_deadline(clock: FakeClock) -> None:
    script, sleeps = Script(503, httpx.ConnectError, 200), Sleeps()
    with request_deadline(8):
        response = await channel(script, clock, sleeps, attempts=3).send("GET", URL)
    assert response.status == 200
    assert script.calls == 3
    assert len(sleeps) == 2 and all(0 <= s <= 2 for s in sleeps)  # full jitter, capped


async def test_attempts_are_bounded(clock: FakeClock) -> None:
    script, sleeps = Script(503, 503, 503, 200), Sleeps()
    response = await channel(script, clock, sleeps, attempts=3).send("GET", URL)
    assert (response.status, script.calls) == (503, 3)


async def test_money_is_never_retried(clock: FakeClock) -> None:
    script, sleeps = Script(503, 200), Sleeps()
    response = await channel(script, clock, sleeps, attempts=3).send("POST", URL, json_body={})
    assert (response.status, script.calls, sleeps) == (503, 1, [])


@pytest.mark.parametrize(
    ("retry_after", "waited"), [("2", 2.0), ("Tue, 04 Jun 2024 00:43:29 GMT", 3.0)]
)
async def test_retry_after_is_honoured_in_both_forms(
    retry_after: str, waited: float, clock: FakeClock
) -> None:
    script, sleeps = Script((429, {"Retry-After": retry_after}), 200), Sleeps()
    with request_deadline(8):
        response = await channel(script, clock, sleeps, attempts=3).send("GET", URL)
    assert (response.status, sleeps) == (200, [waited])


async def test_retry_after_past_the_deadline_fails_fast(clock: FakeClock) -> None:
    script, sleeps = Script((429, {"Retry-After": "30"}), 200), Sleeps()
    chan = channel(script, clock, sleeps, attempts=3)
    with request_deadline(8):
        response = await chan.send("GET", URL)
    assert (response.status, script.calls, sleeps) == (429, 1, [])
    with pytest.raises(UpstreamError) as raised:
        chan.raise_for_status(response)
    assert raised.value.code is ErrorCode.UPSTREAM_RATE_LIMITED
    assert raised.value.retry_after_seconds == 30


async def test_no_backoff_that_would_overrun_the_deadline(clock: FakeClock) -> None:
    script, sleeps = Script(503, 200), Sleeps()
    with request_deadline(0.01):
        response = await channel(script, clock, sleeps, attempts=3).send("GET", URL)
    assert (response.status, script.calls) == (503, 1)


async def test_breaker_opens_fails_fast_probes_once_and_closes(clock: FakeClock) -> None:
    script, sleeps = Script(*([503] * 5), 200, 200), Sleeps()
    breaker, chan = behind_a_breaker(script, clock, sleeps)
    for _ in range(5):
        await chan.send("GET", URL)
    assert breaker.state is BreakerState.OPEN
    with pytest.raises(UpstreamError) as raised:
        await chan.send("GET", URL)
    assert raised.value.code is ErrorCode.CIRCUIT_OPEN
    assert raised.value.retry_after_seconds == 30
    assert script.calls == 5  # failing fast: nothing sent

    clock.advance(30)
    assert breaker.state is BreakerState.HALF_OPEN  # type: ignore[comparison-overlap]
    assert breaker.allow()  # the one probe…
    assert not breaker.allow()  # …and no other while it is out
    breaker.record_success()
    assert breaker.state is BreakerState.CLOSED
    assert (await chan.send("GET", URL)).status == 200


async def test_a_failed_probe_reopens_for_a_full_cooldown(clock: FakeClock) -> None:
    script, sleeps = Script(*([503] * 6)), Sleeps()
    breaker, chan = behind_a_breaker(script, clock, sleeps)
    for _ in range(5):
        await chan.send("GET", URL)
    clock.advance(31)
    await chan.send("GET", URL)  # the probe, failing
    assert breaker.state is BreakerState.OPEN
    assert breaker.retry_after() == 30


async def test_4xx_never_count_towards_the_breaker(clock: FakeClock) -> None:
    script, sleeps = Script(*([404] * 10)), Sleeps()
    breaker, chan = behind_a_breaker(script, clock, sleeps)
    for _ in range(10):
        await chan.send("GET", URL)
    assert breaker.state is BreakerState.CLOSED


async def test_the_bulkhead_bounds_one_account_without_touching_others(
    sim: Simulator, sim_transport: httpx.AsyncBaseTransport, clock: FakeClock
) -> None:
    sim.state.set_faults("magma", hang=True)
    http = UpstreamClient(sim_transport, wall_clock=clock)
    hung = make_channel(ACCOUNT, http, clock, max_concurrency=2)
    headers = {"Authorization": "Bearer demo-magma-private-key"}
    url = "http://sim/magma/v1/misc/balance"
    holders = [asyncio.create_task(hung.send("GET", url, headers=headers)) for _ in range(2)]
    for _ in range(1000):  # until both hold a slot upstream
        if sim.state.calls_to("magma", "balance") == 2:
            break
        await asyncio.sleep(0.005)
    with request_deadline(0.1), pytest.raises(UpstreamError) as raised:
        await hung.send("GET", url, headers=headers)  # no slot frees up in time
    assert raised.value.code is ErrorCode.UPSTREAM_TIMEOUT
    assert sim.state.calls_to("magma", "balance") == 2  # the third was never sent
    other = make_channel(demo_settings().accounts["ourvoice-sn"], http, clock)
    response = await other.send(
        "GET",
        "http://sim/ourvoice/v1/current/balance",
        headers={"Authorization": "Bearer demo-ourvoice-sn-key"},
    )
    assert response.status == 200
    for task in holders:
        task.cancel()
    await asyncio.gather(*holders, return_exceptions=True)
    await http.aclose()


async def test_the_101st_call_in_a_minute_to_muda_is_not_made(
    sim: Simulator, http: UpstreamClient, clock: FakeClock
) -> None:
    account = demo_settings().accounts["muda-ug"]
    assert (account.calls_per_minute, account.calls_per_day) == (100, 5000)
    limits = CallLimits(account.calls_per_minute, account.calls_per_day)
    muda = Muda(account, make_channel(account, http, clock, limits=limits), clock)
    for _ in range(99):  # 1 token exchange + 99 balance reads = 100 calls
        await muda.fetch_balances()
    with pytest.raises(UpstreamError) as raised:
        await muda.fetch_balances()
    assert raised.value.code is ErrorCode.UPSTREAM_RATE_LIMITED
    assert 0 < (raised.value.retry_after_seconds or 0) <= 60
    total = sim.state.calls_to("muda-ug", "token") + sim.state.calls_to("muda-ug", "balance")
    assert total == 100
    clock.advance(60)  # the next minute
    await muda.fetch_balances()
    assert sim.state.calls_to("muda-ug", "balance") == 100


async def test_budgets_are_shared_through_the_store(
    redis_url: str, namespace: str, clock: FakeClock
) -> None:
    from gateway.upstream.quota import Quota

    store_a, store_b = open_store(redis_url, namespace), open_store(redis_url, namespace)
    a = Quota("muda-ug", CallLimits(per_minute=3), store_a, clock)
    b = Quota("muda-ug", CallLimits(per_minute=3), store_b, clock)
    taken = [await a.take(), await b.take(), await a.take(), await b.take()]
    await store_a.close()
    await store_b.close()
    assert taken[:3] == [None, None, None]
    assert taken[3] is not None
