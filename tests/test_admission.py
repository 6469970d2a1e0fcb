"""Overload sheds load instead of queueing it: a bounded number of requests run, a few
wait briefly, the rest get a fast 503 with Retry-After; nothing is answered after the
deadline; a query whose client has gone is cancelled; recovery is immediate."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from typing import Any

import httpx
import pytest

from gateway.app import create_app
from gateway.config.settings import Settings
from gateway.errors import Overloaded
from gateway.metrics import Metrics
from gateway.server.admission import Admission
from tests.helpers import FakeClock, demo_settings, running_gateway, serving
from tests.test_topup import TOP_UP, topup

MAGMA = '{ balances(accountIds: ["magma"]) { complete } }'


class Gate(httpx.AsyncBaseTransport):
    """Holds every upstream call until `opened`; records calls cancelled while held."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.opened = asyncio.Event()
        self.waiting = 0
        self.cancelled = asyncio.Event()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.waiting += 1
        try:
            await self.opened.wait()
        except asyncio.CancelledError:
            self.cancelled.set()
            raise
        finally:
            self.waiting -= 1
        return await self.inner.handle_async_request(request)


def with_server(settings: Settings, **changes: Any) -> Settings:
    return dataclasses.replace(settings, server=dataclasses.replace(settings.server, **changes))


async def until(condition: Any) -> None:
    """Poll `condition` (sync or async) until true; fail after 10 s."""
    for _ in range(2000):
        done = condition()
        if await done if asyncio.iscoroutine(done) else done:
            return
        await asyncio.sleep(0.005)
    raise AssertionError("condition never held")


async def test_slots_then_a_short_queue_then_refusal_and_immediate_recovery() -> None:
    admission = Admission(max_active=2, max_waiting=1, wait_seconds=60, metrics=Metrics())
    release = asyncio.Event()
    started: list[int] = []

    async def request(n: int) -> str:
        try:
            async with admission.slot("query", deadline_seconds=60):
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
    assert shed == "shed, retry after 1 s"
    assert started == [0, 1, 2]  # the waiting one ran as soon as a slot was free
    assert await request(100) == "answered"  # load gone: admitted at once


async def test_a_waiting_request_never_waits_past_its_deadline() -> None:
    admission = Admission(max_active=1, max_waiting=10, wait_seconds=60, metrics=Metrics())
    async with admission.slot("query", deadline_seconds=60):
        with pytest.raises(Overloaded):
            async with admission.slot("query", deadline_seconds=0.05):
                pass


async def test_excess_requests_get_a_fast_503_in_the_graphql_shape(
    sim_transport: httpx.AsyncBaseTransport, clock: FakeClock
) -> None:
    gate = Gate(sim_transport)
    settings = with_server(
        demo_settings(), admission="fixed", max_concurrent_requests=1, max_queued_requests=0
    )
    async with running_gateway(settings, gate, clock) as gw:
        first = asyncio.create_task(gw.post(MAGMA))
        await until(lambda: gate.waiting == 1)  # it holds the only slot
        shed = await gw.post(MAGMA)
        gate.opened.set()
        answered = await first
        after = await gw.post(MAGMA)  # load gone: answered at once
        counted = await gw.metric(
            "gateway_admission_events_total", operation_type="query", outcome="rejected"
        )
    assert shed.status_code == 503 and shed.headers["retry-after"] == "1"
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
    assert answer.status_code == 503 and answer.headers["retry-after"] == "1"
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
