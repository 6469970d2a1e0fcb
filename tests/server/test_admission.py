"""Overload sheds load instead of queueing it: a bounded number of requests run, a few
wait briefly, the rest get a fast 503 with Retry-After; nothing is answered after the
deadline; a query whose client has gone is cancelled; recovery is immediate."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import settings as hyp_settings
from hypothesis import strategies as st

from gateway.app import create_app
from gateway.config.settings import Settings
from gateway.errors import Overloaded
from gateway.observability.metrics import Metrics
from gateway.server.admission import AdaptiveLimit, Admission, Kind, LoopDelayProbe
from tests.helpers import (
    TOP_UP,
    FakeClock,
    Gate,
    GatewayClient,
    demo_settings,
    running_gateway,
    serving,
    topup,
    with_server,
)

MAGMA = '{ balances(accountIds: ["magma"]) { complete } }'
# Another request (one identical to a request running waits for its answer, taking no
# slot: tests/server/test_shared_answers.py)
OURVOICE = '{ balances(accountIds: ["ourvoice-sn"]) { complete } }'


async def until(condition: Any) -> None:
    """Poll `condition` (sync or async) until true; fail after 10 s."""
    for _ in range(2000):
        done = condition()
        if await done if asyncio.iscoroutine(done) else done:
            return
        await asyncio.sleep(0.005)
    raise AssertionError("condition never held")


@contextlib.asynccontextmanager
async def slot(admission: Admission, deadline_seconds: float) -> AsyncIterator[None]:
    """A query's slot for the block (`take`, then `release` however it ends)."""
    await admission.take("query", deadline_seconds)
    try:
        yield
    finally:
        admission.release("query")


async def test_slots_then_a_short_queue_then_refusal_and_immediate_recovery() -> None:
    told = iter([3, 1, 2])  # the injected draw of Retry-After
    admission = Admission(
        max_active=2,
        max_waiting=1,
        wait_seconds=60,
        metrics=Metrics(),
        retry_after=lambda: next(told),
    )
    release = asyncio.Event()
    started: list[int] = []

    async def request(n: int) -> str:
        try:
            async with slot(admission, deadline_seconds=60):
                started.append(n)
                await release.wait()
                return "answered"
        except Overloaded as exc:
            return f"shed, retry after {exc.retry_after_seconds} s"

    running = [asyncio.create_task(request(n)) for n in range(3)]
    await until(lambda: len(started) == 2)
    shed = await request(99)  # two running, one waiting: no room
    release.set()
    assert await asyncio.gather(*running) == ["answered"] * 3
    assert shed == "shed, retry after 3 s"
    assert started == [0, 1, 2]  # the waiting one ran as soon as a slot was free
    assert await request(100) == "answered"  # load gone: admitted at once


async def test_a_waiting_request_never_waits_past_its_deadline() -> None:
    admission = Admission(max_active=1, max_waiting=10, wait_seconds=60, metrics=Metrics())
    async with slot(admission, deadline_seconds=60):
        with pytest.raises(Overloaded):
            async with slot(admission, deadline_seconds=0.05):
                pass


@contextlib.asynccontextmanager
async def one_slot_taken(
    sim_transport: httpx.AsyncBaseTransport, clock: FakeClock
) -> AsyncIterator[tuple[GatewayClient, Gate, asyncio.Task[httpx.Response]]]:
    """A gateway with one slot and no queue, a query holding that slot at its upstream
    (until the test opens the gate)."""
    gate = Gate(sim_transport)
    settings = with_server(
        demo_settings(), admission="fixed", max_concurrent_requests=1, max_queued_requests=0
    )
    async with running_gateway(settings, gate, clock) as gw:
        held = asyncio.create_task(gw.post(MAGMA))
        await until(lambda: gate.waiting == 1)
        yield gw, gate, held


async def test_excess_requests_get_a_fast_503_in_the_graphql_shape(
    sim_transport: httpx.AsyncBaseTransport, clock: FakeClock
) -> None:
    async with one_slot_taken(sim_transport, clock) as (gw, gate, first):
        shed = await gw.post(OURVOICE)
        gate.opened.set()
        answered = await first
        after = await gw.post(MAGMA)  # load gone: answered at once
        counted = await gw.metric(
            "gateway_admission_events_total", operation_type="query", outcome="rejected"
        )
    assert shed.status_code == 503 and shed.headers["retry-after"] in ("1", "2", "3")
    assert shed.json() == {
        "errors": [
            {"message": "The gateway is busy: retry shortly.", "extensions": {"code": "OVERLOADED"}}
        ]
    }
    assert answered.status_code == 200 and after.status_code == 200
    assert counted == 1


def slow_accounts(settings: Settings) -> Settings:
    """Upstream calls that would be waited for a minute."""
    settings = with_server(settings, request_deadline_seconds=60)
    accounts = {k: dataclasses.replace(a, timeout_seconds=60) for k, a in settings.accounts.items()}
    return dataclasses.replace(settings, accounts=accounts)


async def test_no_query_is_answered_after_its_deadline(
    sim_transport: httpx.AsyncBaseTransport, clock: FakeClock
) -> None:
    gate = Gate(sim_transport)  # never opened: the upstream never answers
    async with running_gateway(slow_accounts(demo_settings()), gate, clock) as gw:
        gw.app.state.graphql.deadline_seconds = 0.2  # shorter than anything inside it
        answer = await gw.post(MAGMA)
    assert answer.status_code == 503 and answer.headers["retry-after"] == "1"  # the deadline's
    (error,) = answer.json()["errors"]
    assert error["extensions"]["code"] == "OVERLOADED" and "deadline" in error["message"]


async def test_a_queued_request_is_shed_at_its_deadline_while_a_top_up_runs_on(
    sim_transport: httpx.AsyncBaseTransport, clock: FakeClock
) -> None:
    gate = Gate(sim_transport)
    settings = with_server(
        slow_accounts(demo_settings()),
        max_concurrent_requests=1,
        queue_timeout_seconds=60,
        request_deadline_seconds=0.1,  # the whole request's: 1.1 s
    )
    async with running_gateway(settings, gate, clock) as gw:
        top_up = asyncio.create_task(gw.query(TOP_UP, topup()))
        await until(lambda: gate.waiting == 1)  # the top-up holds the only slot
        queued = await gw.post(MAGMA)
        gate.opened.set()
        paid = (await top_up)["data"]["topUp"]
    assert queued.status_code == 503  # shed at its deadline, not answered late
    assert paid["__typename"] == "TopUpSucceeded"  # past the deadline, never cut short


async def test_a_query_whose_client_left_is_abandoned(
    sim_transport: httpx.AsyncBaseTransport,
) -> None:
    """The request's own work ends at once; the upstream call it started is shared (single
    flight: other requests may be waiting on it, and its answer fills the cache), so it
    finishes on its own terms, bounded by the account's timeout."""
    gate = Gate(sim_transport)  # the upstream would keep it busy for the whole deadline
    app = create_app(slow_accounts(demo_settings()), transport=gate)
    async with serving(app) as url, httpx.AsyncClient(base_url=url) as http:

        async def in_flight() -> float:
            text = (await http.get("/metrics")).text
            (line,) = [x for x in text.splitlines() if x.startswith("gateway_graphql_in_flight ")]
            return float(line.split()[1])

        async def in_flight_is(value: float) -> bool:
            return await in_flight() == value

        host, port = url.removeprefix("http://").split(":")
        _, writer = await asyncio.open_connection(host, int(port))
        body = json.dumps({"query": MAGMA}).encode()
        writer.write(
            b"POST /graphql HTTP/1.1\r\nHost: gateway\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
        )
        await writer.drain()
        await until(lambda: gate.waiting == 1)
        assert await in_flight() == 1
        writer.close()  # the client gives up
        # far less than the 60 s it would otherwise take
        await until(lambda: in_flight_is(0))
        assert gate.waiting == 1  # the shared upstream call is still out
        gate.opened.set()


# --- Adaptive admission: the limit follows the event loop's delay -------------------------


def test_the_limit_follows_the_median_delay_and_grows_only_when_it_binds() -> None:
    assert AdaptiveLimit(ceiling=256, floor=8, target_delay=0.02).limit == 128  # half its ceiling
    assert AdaptiveLimit(ceiling=10, floor=8, target_delay=0.02).limit == 8  # never under the floor
    limit = AdaptiveLimit(ceiling=200, floor=8, target_delay=0.02)
    for _ in range(10):
        limit.observe(0.04, held_back=False)  # persistently late: it comes down
    assert limit.limit == 34
    limit = AdaptiveLimit(ceiling=100, floor=8, target_delay=0.02)
    limit._estimate = 32.0  # as if it had come down to 32
    for _ in range(7):
        assert limit.observe(0.0, held_back=False) == 32  # nobody held back: nothing learnt
    assert limit.observe(0.5, held_back=True) == 33  # one late wake-up is not a queue
    for _ in range(3):
        limit.observe(0.04, held_back=True)  # late half the time: the median is in time
    assert limit.limit > 33
    grown = limit.limit
    assert limit.observe(0.04, held_back=True) < grown  # late most of the time: it shrinks
    shrunk = limit.limit
    # a fifth of the way to half (E is a real number: L is E rounded down)
    assert int(shrunk * 0.9) <= limit.observe(0.04, held_back=True) <= int((shrunk + 1) * 0.9)
    for _ in range(200):
        limit.observe(1.0, held_back=True)
    assert limit.limit == 8  # the floor holds
    for _ in range(2000):
        limit.observe(0.0, held_back=True)
    assert limit.limit == 100  # the ceiling holds


async def test_a_share_of_the_limit_is_kept_for_mutations_and_they_wait_first() -> None:
    admission = Admission(
        max_active=10,
        max_waiting=10,
        wait_seconds=60,
        metrics=Metrics(),
        reserved_for_mutations=0.2,
    )
    for _ in range(8):
        assert await admission.enter("query", 60)
    assert admission.running == 8
    shed_at_once = Admission(10, 0, 0.0, Metrics(), reserved_for_mutations=0.2)
    for _ in range(8):
        await shed_at_once.enter("query", 60)
    assert not await shed_at_once.enter("query", 60)  # dashboards are shed …
    assert await shed_at_once.enter("mutation", 60)  # … while a top-up is admitted
    assert await shed_at_once.enter("mutation", 60)
    assert not await shed_at_once.enter("mutation", 60)  # the whole limit is taken
    shrunk = Admission(10, 0, 0.0, Metrics(), reserved_for_mutations=0.2)
    for _ in range(8):
        await shrunk.enter("query", 60)
    shrunk._ceiling = 5  # the limit fell under the queries already running
    assert not await shrunk.enter("query", 60)
    assert await shrunk.enter("mutation", 60)  # the reserved share is still the top-ups'
    assert not await shrunk.enter("mutation", 60)  # (one slot: 20 % of 5)

    order: list[str] = []

    async def waits(kind: Kind) -> None:
        assert await admission.enter(kind, 60)
        order.append(kind)

    await admission.enter("mutation", 60)
    await admission.enter("mutation", 60)  # 10 running: the limit
    query = asyncio.create_task(waits("query"))
    await until(lambda: admission.waiting == 1)
    mutation = asyncio.create_task(waits("mutation"))
    await until(lambda: admission.waiting == 2)
    admission.release("mutation")  # one slot: the mutation, though it came second
    await until(lambda: order == ["mutation"])
    admission.release("mutation")
    admission.release("query")
    admission.release("query")  # 7 running: room for a query (8 at most)
    await asyncio.gather(query, mutation)
    assert order == ["mutation", "query"]


class ModelGate:
    """docs/security.md "Adaptive admission", written from its definitions (not from the code): the
    estimate E starts at half the ceiling (at least the floor); after each measurement, with d
    the median of the last 8 (fewer at first), E moves 0.2 of the way to E·max(0.5, T/d)
    when d > T, or to E + √E when d ≤ T and a request found no room since the one before; E stays within [floor, ceiling]; L = E rounded down. A mutation is
    admitted while fewer than L run or fewer than R mutations run, a query while fewer than
    max(1, L − R) run; R (reserved) = max(1, round(L·s)) for a share s above 0, else 0."""

    def __init__(self, ceiling: int, floor: int, target: float, share: float) -> None:
        self.ceiling, self.floor, self.target, self.share = ceiling, floor, target, share
        self.estimate = float(max(min(floor, ceiling), ceiling // 2))
        self.running: list[str] = []  # the kinds of the requests running
        self.found_no_room = False
        self.measured: list[float] = []

    @property
    def limit(self) -> int:
        return int(self.estimate)

    def admit(self, kind: str) -> bool:
        limit = self.limit
        reserved = max(1, round(limit * self.share)) if self.share > 0 else 0
        if kind == "query":
            admitted = len(self.running) < max(1, limit - reserved)
        else:
            admitted = len(self.running) < limit or self.running.count("mutation") < reserved
        if admitted:
            self.running.append(kind)
        else:
            self.found_no_room = True
        return admitted

    def measure(self, measured: float) -> None:
        self.measured.append(measured)
        last = sorted(self.measured[-8:])
        middle = len(last) // 2
        delay = last[middle] if len(last) % 2 else (last[middle - 1] + last[middle]) / 2
        if delay > self.target:
            goal = self.estimate * max(0.5, self.target / delay)
        elif self.found_no_room:
            goal = self.estimate + self.estimate**0.5
        else:
            goal = self.estimate
        self.estimate = min(
            self.ceiling, max(self.floor, self.estimate + 0.2 * (goal - self.estimate))
        )
        self.found_no_room = False


@hyp_settings(max_examples=150, deadline=None)
@given(
    ceiling=st.integers(1, 300),
    floor=st.integers(1, 40),
    share=st.sampled_from([0.0, 0.1, 0.25, 0.5]),
    steps=st.lists(
        st.one_of(
            st.tuples(st.just("enter"), st.sampled_from(["query", "mutation"])),
            st.tuples(st.just("leave"), st.integers(0, 10_000)),  # which of those running
            st.tuples(st.just("measure"), st.floats(0.0, 2.0)),
        ),
        max_size=300,
    ),
)
def test_admission_decisions_and_the_limit_match_the_readmes_model(
    ceiling: int, floor: int, share: float, steps: list[tuple[str, Any]]
) -> None:
    """Generated histories of arrivals, departures and loop delays: every admission, every
    shed and the limit after every measurement are what the docs' definitions say."""

    async def run() -> None:
        target = 0.02
        gate = Admission(
            ceiling,
            0,
            0.0,
            Metrics(),
            adaptive=AdaptiveLimit(ceiling, floor, target),
            reserved_for_mutations=share,
        )
        model = ModelGate(ceiling, min(floor, ceiling), target, share)
        for step, value in steps:
            if step == "enter":
                assert await gate.enter(value, 60) == model.admit(value), step
            elif step == "leave" and model.running:
                gate.release(model.running.pop(value % len(model.running)))  # type: ignore[arg-type]
            elif step == "measure":
                gate.observe(value)
                model.measure(value)
            assert gate.running == len(model.running)
            assert gate.mutations == model.running.count("mutation")
            assert gate.limit == model.limit, (gate.limit, model.estimate)

    asyncio.run(run())


async def test_queries_on_the_event_stream_path_are_refused_like_graphql_when_the_gate_is_full(
    sim_transport: httpx.AsyncBaseTransport, clock: FakeClock
) -> None:
    async with one_slot_taken(sim_transport, clock) as (gw, gate, held):
        on_graphql = await gw.post(OURVOICE)
        on_stream = await gw.http.post(
            "/graphql/stream", json={"query": MAGMA}, headers={"accept": "text/event-stream"}
        )
        health = await gw.http.get("/healthz")
        gate.opened.set()
        await held
        after = await gw.http.post(
            "/graphql/stream", json={"query": MAGMA}, headers={"accept": "text/event-stream"}
        )
        shed = await gw.metric(
            "gateway_admission_events_total", operation_type="query", outcome="rejected"
        )
    assert on_graphql.status_code == on_stream.status_code == 503
    assert on_stream.headers["retry-after"] in ("1", "2", "3")
    assert on_stream.json() == on_graphql.json()
    assert on_stream.json()["errors"][0]["extensions"]["code"] == "OVERLOADED"
    assert health.status_code == 200  # health is never shed
    assert after.status_code == 200 and "event: complete" in after.text  # slot given back
    assert shed == 2


async def test_top_ups_are_admitted_while_dashboards_are_shed(
    sim_transport: httpx.AsyncBaseTransport, clock: FakeClock
) -> None:
    gate = Gate(sim_transport)
    settings = with_server(
        demo_settings(),
        admission="fixed",
        max_concurrent_requests=4,
        max_queued_requests=0,
        reserved_for_mutations=0.25,
    )
    async with running_gateway(settings, gate, clock) as gw:
        dashboards = [
            asyncio.create_task(gw.post(f'{{ balances(accountIds: ["{a}"]) {{ complete }} }}'))
            for a in ("magma", "muda-ug", "paymob-eg")
        ]
        await until(lambda: gate.waiting == 3)  # the dashboards' share is taken
        shed = await gw.post(OURVOICE)
        top_up = asyncio.create_task(gw.query(TOP_UP, topup()))
        await until(lambda: gate.waiting == 4)  # admitted: it reached its provider
        gate.opened.set()
        paid = (await top_up)["data"]["topUp"]
        answered = await asyncio.gather(*dashboards)
    assert shed.status_code == 503
    assert paid["__typename"] == "TopUpSucceeded"
    assert [a.status_code for a in answered] == [200, 200, 200]


async def test_the_probe_measures_how_late_the_loop_woke_it() -> None:
    now, late = [100.0], [0.0, 0.03, 0.25]
    seen: list[float] = []

    async def sleep(seconds: float) -> None:  # the loop wakes the probe late, as told
        now[0] += seconds + late[len(seen)]

    def observe(delay: float) -> None:
        seen.append(round(delay, 9))
        if len(seen) == len(late):
            raise asyncio.CancelledError

    probe = LoopDelayProbe(observe, interval=0.05, monotonic=lambda: now[0], sleep=sleep)
    with pytest.raises(asyncio.CancelledError):
        await probe.run()
    assert seen == late


async def test_the_probe_counts_results_waiting_to_be_handed_out_as_the_loops_delay() -> None:
    """Results a handout (`cache/handout.py`) has not yet handed to their requests are
    ready work waiting for the CPU: the probe observes the larger of the two."""
    now, late, backlog = [100.0], [0.002, 0.03, 0.0], [0.02, 0.01, 0.0]
    seen: list[float] = []

    async def sleep(seconds: float) -> None:
        now[0] += seconds + late[len(seen)]

    def observe(delay: float) -> None:
        seen.append(round(delay, 9))
        if len(seen) == len(late):
            raise asyncio.CancelledError

    probe = LoopDelayProbe(
        observe, lambda: backlog[len(seen)], monotonic=lambda: now[0], sleep=sleep
    )
    with pytest.raises(asyncio.CancelledError):
        await probe.run()
    assert seen == [0.02, 0.03, 0.0]


def test_shed_clients_are_told_to_come_back_after_one_two_or_three_seconds() -> None:
    """At random, so the clients shed together do not come back as one wave."""
    admission = Admission(1, 0, 0.0, Metrics())
    assert {admission.retry_after() for _ in range(300)} == {1, 2, 3}


def test_a_request_sends_its_calls_in_its_own_turn_only_while_half_the_limit_is_free() -> None:
    """`Admission.roomy` decides whether an admitted request's upstream calls leave in
    the turn it runs (`_compat/asyncio.started`): near the limit that would lengthen the
    loop's turns, and the adaptive limit would read them as a late loop and fall."""
    admission = Admission(max_active=10, max_waiting=0, wait_seconds=0, metrics=Metrics())
    seen = []
    for _ in range(7):
        seen.append(admission.roomy())
        assert admission.try_enter("query")
    assert seen == [True] * 6 + [False]  # 0..5 running of 10: roomy; 6: not
    admission.release("query")
    admission.release("query")
    assert admission.roomy()
