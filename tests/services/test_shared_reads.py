"""One upstream read, one answer: every request waiting on the same read of an account
(the cache's single flight) is given the answer built once, and whoever listens to the
answers (gauges, history, notifications) hears of that read once — and of the next read,
and of a failure between two reads, as before."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
from collections.abc import Callable
from decimal import Decimal

import httpx

from gateway._compat.asyncio import EAGER, Turn, first_steps
from gateway.cache.read_through import Generations, ReadThroughCache
from gateway.cache.store import open_store
from gateway.config.settings import Settings
from gateway.domain import (
    AccountBalance,
    AccountBalanceResult,
    Asset,
    AssetKind,
    Balance,
    Money,
    ProviderFailure,
)
from gateway.errors import UpstreamContext, UpstreamUnauthorized
from gateway.observability.metrics import Metrics
from gateway.services.balances import BalanceService
from tests.helpers import (
    DelayTransport,
    FakeClock,
    Recording,
    demo_accounts,
    demo_settings,
    running_gateway,
    with_section,
)

ACCOUNT = dataclasses.replace(demo_accounts()["magma"], fresh_seconds=0)


class Upstream:
    """An adapter whose reads wait until released; counts them."""

    def __init__(self) -> None:
        self.calls = 0
        self.release = asyncio.Event()
        self.fail = False

    async def fetch_balances(self) -> tuple[Balance, ...]:
        self.calls += 1
        await self.release.wait()
        if self.fail:
            raise UpstreamUnauthorized(UpstreamContext("magma_onepay", "magma"))
        money = Money(Decimal(self.calls), "XOF")
        return (Balance("magma:BJ:XOF", Asset("XOF", "XOF", AssetKind.CASH), money, money),)


async def test_requests_sharing_a_read_share_its_answer_and_it_is_announced_once(
    clock: FakeClock,
) -> None:
    store = open_store("memory://", "shared-reads")
    cache = ReadThroughCache(store, clock, Metrics())
    upstream = Upstream()
    service = BalanceService(
        {"magma": ACCOUNT}, {"magma": upstream}, cache, Generations(store), 5.0
    )
    heard: list[AccountBalanceResult] = []
    service.answered.append(heard.append)

    waiting = [asyncio.ensure_future(service.balances(["magma"])) for _ in range(20)]
    await asyncio.sleep(0.01)
    upstream.release.set()
    answers = [answer for (answer,) in await asyncio.gather(*waiting)]
    assert upstream.calls == 1
    assert all(a is answers[0] for a in answers)  # built once, not once per request
    assert isinstance(answers[0], AccountBalance)
    assert answers[0].balances[0].total.amount == 1
    assert heard == [answers[0]]

    (second,) = await service.balances(["magma"])  # fresh_seconds = 0: a read of its own
    assert upstream.calls == 2 and second is not answers[0]
    assert isinstance(second, AccountBalance) and second.balances[0].total.amount == 2
    assert heard == [answers[0], second]

    upstream.fail = True
    (failure,) = await service.balances(["magma"])
    assert isinstance(failure, ProviderFailure)
    assert heard[-1] is failure
    await store.close()


async def test_an_accounts_upstream_call_is_made_before_the_reads_are_handed_back(
    clock: FakeClock,
) -> None:
    """A read goes as far as its upstream call at once — not when the event loop comes
    round to it, behind every request that arrived in the same turn (bench/README.md's
    convoy: the first of sixteen identical dashboards sent its calls after the other
    fifteen had been read and set waiting for it) — where first steps are on, as the
    endpoint has them for a request others may join; elsewhere, in the loop's turn."""
    store = open_store("memory://", "calls-first")
    cache = ReadThroughCache(store, clock, Metrics())
    upstream = Upstream()
    service = BalanceService(
        {"magma": ACCOUNT}, {"magma": upstream}, cache, Generations(store), 5.0
    )
    ordinary = service.start(["magma"])
    assert upstream.calls == 0  # not yet: a task like any other
    with first_steps(Turn(clock=lambda: 0.0)):
        reads = service.start(["magma"])
    assert upstream.calls == 1  # no await in between: the call was made in start()
    upstream.release.set()
    (answer,) = await asyncio.gather(*reads.values())
    await asyncio.gather(*ordinary.values())
    assert isinstance(answer, AccountBalance) and answer.balances[0].total.amount == 1
    await store.close()


DASHBOARD = (  # bench/run.py's dashboard: totals and results, siblings gathered by graphql-core
    "{ balances { complete totals { currency total { amount } } "
    "results { __typename ... on AccountBalance { account { id } balances { id } } "
    "... on ProviderFailure { account { id } code } } } }"
)


async def calls_sent_before_whats_queued_behind(
    settings: Settings,
    sim_transport: httpx.AsyncBaseTransport,
    clock: FakeClock,
    turn_clock: Callable[[], float] = lambda: 0.0,
) -> tuple[list[str], list[str]]:
    """The dashboard and something queued behind it in the same turn of the event loop
    (as the requests a worker read in one turn are): the upstream calls made when the
    second ran, and all the dashboard's calls. First steps are timed by `turn_clock`
    against the default budget (by default a clock that stands still: never spent)."""
    upstream = Recording(DelayTransport(sim_transport))
    turn = Turn(clock=turn_clock)
    async with running_gateway(settings, upstream, clock, turn=turn) as gw:
        seen: list[list[str]] = []

        async def queued_behind() -> None:
            seen.append(sorted(r.url.path for r in upstream.requests))

        await gw.query(DASHBOARD)  # the document parsed and validated once per process
        clock.advance(3600)  # every balance read again
        upstream.requests.clear()
        dashboard = asyncio.ensure_future(gw.query(DASHBOARD))
        behind = asyncio.ensure_future(queued_behind())
        answer = await dashboard
        await behind
    assert answer["data"]["balances"]["complete"] is True
    (before,) = seen
    return before, sorted(r.url.path for r in upstream.requests)


async def test_a_dashboards_upstream_calls_leave_before_the_requests_queued_behind_it(
    sim_transport: httpx.AsyncBaseTransport, clock: FakeClock
) -> None:
    """A request identical ones may wait for (the response cache is on) sends its
    upstream calls before what is queued behind it runs."""
    before, calls = await calls_sent_before_whats_queued_behind(
        demo_settings(), sim_transport, clock
    )
    assert len(calls) == 5  # each account's balance (Muda's token is still valid)
    assert before == calls  # all of them, within the turn's budget. Before: none.


async def test_first_steps_over_the_turns_budget_wait_for_their_turn(
    sim_transport: httpx.AsyncBaseTransport, clock: FakeClock
) -> None:
    """On a machine so slow the request's own first step spends the turn's budget (2 ms)
    before its reads start, they start as ordinary tasks: the turn is not stretched."""
    ticks = itertools.count(step=0.01)  # 10 ms pass between any two readings
    before, calls = await calls_sent_before_whats_queued_behind(
        demo_settings(), sim_transport, clock, lambda: next(ticks)
    )
    assert len(calls) == 5
    assert before == []


async def test_a_request_nobody_can_join_starts_its_reads_in_turn(
    sim_transport: httpx.AsyncBaseTransport, clock: FakeClock
) -> None:
    """Without the response cache no request waits for another's answer, and none takes
    its first steps early: under overload, turns lengthened that way read as a late loop
    to the adaptive admission, whose limit fell to a fifth (bench/README.md)."""
    settings = with_section(demo_settings(), "cache", response_cache=False)
    before, calls = await calls_sent_before_whats_queued_behind(settings, sim_transport, clock)
    assert len(calls) == 5
    assert before == []  # sent after what was queued behind it had run


async def test_a_requests_first_steps_end_with_it(
    sim_transport: httpx.AsyncBaseTransport, clock: FakeClock
) -> None:
    """Served in the caller's own task (as in-process clients do), a request leaves the
    first-steps setting as it found it: what comes after it is not run by its turn."""
    async with running_gateway(demo_settings(), sim_transport, clock) as gw:
        before = EAGER.get()
        answer = await gw.query(DASHBOARD)
        after = EAGER.get()
    assert answer["data"]["balances"]["complete"] is True
    assert before is None and after is None
