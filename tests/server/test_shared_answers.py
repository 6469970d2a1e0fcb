"""Identical requests in flight together get one answer, made once (server/shared_answers.py):
the requests that arrive while the first is running wait for its bytes instead of running
the same document again; another caller, another body or a balance invalidated in between
is never handed that answer, nor is a request that would get a fresher one alone, nor an
answer with errors; when the first request's client leaves, one waiting takes its place."""

from __future__ import annotations

import asyncio
import json
import logging
from decimal import Decimal
from typing import Any

import httpx
import pytest

from gateway.server.shared_answers import SharedAnswers
from gateway.simulator import Simulator
from tests.helpers import (
    FakeClock,
    Gate,
    GatewayClient,
    client,
    demo_settings,
    ourvoice_fake,
    production,
    running_gateway,
    with_section,
    with_server,
)
from tests.server.test_admission import until

QUERY = """query Dash($ids: [ID!]) { balances(accountIds: $ids) { complete results {
  __typename ... on AccountBalance { balances { total { amount } } } } } }"""
EVENTS = "gateway_response_cache_events_total"
WAITING = 15
ALL_KEY = "bgw_shared-answers-all-0123456789abcdef"
SENEGAL_KEY = "bgw_shared-answers-sn-0123456789abcdef"


def uncached() -> Any:
    """Nothing stored (`fresh_seconds = 0`): every request reads its upstream, and only
    requests in flight together share."""
    return with_section(demo_settings(), "cache", fresh_seconds=0)


def shared(gw: GatewayClient) -> SharedAnswers:
    answers: SharedAnswers = gw.app.state.graphql.shared
    return answers


async def events(gw: GatewayClient, event: str) -> float:
    return await gw.metric(EVENTS, event=event)


def amount(response: httpx.Response) -> str:
    results = json.loads(response.content)["data"]["balances"]["results"]
    value: str = results[0]["balances"][0]["total"]["amount"]
    return value


async def test_requests_that_arrive_while_an_identical_one_runs_are_sent_its_answer(
    sim_transport: httpx.AsyncBaseTransport, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "gateway.access")
    gate = Gate(sim_transport)
    async with running_gateway(uncached(), gate, clock) as gw:
        ids = {"ids": ["ourvoice-sn", "magma"]}
        first = asyncio.create_task(gw.post(QUERY, ids))
        await gate.entered.wait()
        clock.advance(1)  # they ask after the first did, before its reads land
        others = [asyncio.create_task(gw.post(QUERY, ids)) for _ in range(WAITING)]
        await until(lambda: shared(gw).waiting == WAITING)
        gate.opened.set()
        answers = await asyncio.gather(first, *others)
        assert await events(gw, "miss") == 1
        assert await events(gw, "joined") == WAITING
    assert {a.status_code for a in answers} == {200}
    assert len({a.content for a in answers}) == 1  # byte for byte the first one's answer
    assert amount(answers[0]) == "50000"
    lines = [r.access for r in caplog.records if r.name == "gateway.access"]  # type: ignore[attr-defined]
    graphql = [line for line in lines if line["path"] == "/graphql"]
    assert sorted(line["response_cache"] for line in graphql) == ["joined"] * WAITING + ["miss"]
    # a shared answer is logged as the request that made it: its operation, its accounts
    assert {(line["operation_name"], line["accounts"], line["outcome"]) for line in graphql} == {
        ("Dash", 2, "ok")
    }


async def until_metric(gw: GatewayClient, event: str, count: int) -> None:
    values: list[float] = []

    async def reached() -> bool:
        values.append(await events(gw, event))
        return values[-1] >= count

    for _ in range(2000):  # a bound on the gateway, not a timing assertion
        if await reached():
            return
        await asyncio.sleep(0.005)
    raise AssertionError(values[-1:])


async def test_another_caller_another_body_or_a_balance_changed_since_is_never_sent_it(
    sim: Simulator, sim_transport: httpx.AsyncBaseTransport, clock: FakeClock
) -> None:
    settings = production(
        uncached(),
        client("all", ALL_KEY, ("balances:read", "metrics:read"), None),
        client("senegal", SENEGAL_KEY, ("balances:read",), ("ourvoice-sn",)),
    )
    gate = Gate(sim_transport)
    async with running_gateway(settings, gate, clock, key=ALL_KEY) as gw:
        http = gw.http

        def post(key: str, ids: list[str]) -> asyncio.Task[httpx.Response]:
            body = {"query": QUERY, "variables": {"ids": ids}}
            headers = {"authorization": f"Bearer {key}"}
            return asyncio.create_task(http.post("/graphql", json=body, headers=headers))

        first = post(ALL_KEY, ["ourvoice-sn"])
        await gate.entered.wait()
        other_caller = post(SENEGAL_KEY, ["ourvoice-sn"])  # may see less: another key
        other_body = post(ALL_KEY, ["ourvoice-sn", "magma"])
        await until_metric(gw, "miss", 3)
        ourvoice_fake(sim).balances["ourvoice-sn"] = Decimal("65000")
        await gw.app.state.service.invalidate("ourvoice-sn")  # a top-up landed, say
        after_change = post(ALL_KEY, ["ourvoice-sn"])
        await until_metric(gw, "miss", 4)
        gate.opened.set()
        answers = await asyncio.gather(first, other_caller, other_body, after_change)
        assert await events(gw, "joined") == 0
    assert {a.status_code for a in answers} == {200}
    assert amount(answers[3]) == "65000"  # read after the change, not handed the first's


async def test_when_the_first_request_leaves_one_waiting_request_takes_its_place(
    sim_transport: httpx.AsyncBaseTransport, clock: FakeClock
) -> None:
    gate = Gate(sim_transport)
    async with running_gateway(uncached(), gate, clock) as gw:
        ids = {"ids": ["ourvoice-sn"]}
        first = asyncio.create_task(gw.post(QUERY, ids))
        await gate.entered.wait()
        others = [asyncio.create_task(gw.post(QUERY, ids)) for _ in range(3)]
        await until(lambda: shared(gw).waiting == 3)
        first.cancel()  # its client went away: its answer will never be made
        await asyncio.gather(first, return_exceptions=True)
        await until(lambda: shared(gw).waiting == 2)  # one of them runs, two wait for it
        gate.opened.set()
        answers = await asyncio.gather(*others)
        assert await events(gw, "miss") == 2  # the first, and the one that took its place
        assert await events(gw, "joined") == 2
    assert [a.status_code for a in answers] == [200] * 3
    assert {amount(a) for a in answers} == {"50000"}


async def test_a_request_waiting_for_an_identical_answer_takes_no_slot(
    sim_transport: httpx.AsyncBaseTransport, clock: FakeClock
) -> None:
    """Waiting costs the gateway nothing: with one slot, taken by the first request,
    identical requests are sent its answer — another request is shed."""
    settings = with_server(
        uncached(), admission="fixed", max_concurrent_requests=1, reserved_for_mutations=0.0
    )
    gate = Gate(sim_transport)
    async with running_gateway(settings, gate, clock) as gw:
        ids = {"ids": ["ourvoice-sn"]}
        first = asyncio.create_task(gw.post(QUERY, ids))
        await gate.entered.wait()
        others = [asyncio.create_task(gw.post(QUERY, ids)) for _ in range(5)]
        await until(lambda: shared(gw).waiting == 5)
        another = await gw.post(QUERY, {"ids": ["magma"]})
        gate.opened.set()
        answers = await asyncio.gather(first, *others)
    assert another.status_code == 503
    assert another.json()["errors"][0]["extensions"]["code"] == "OVERLOADED"
    assert [a.status_code for a in answers] == [200] * 6


async def test_a_request_is_never_handed_an_answer_older_than_it_would_get_on_its_own(
    sim: Simulator, sim_transport: httpx.AsyncBaseTransport, clock: FakeClock
) -> None:
    """With nothing kept fresh, the first request's Our Voice read has landed while it
    still waits on Magma; an identical request asking 30 s later reads Our Voice anew."""
    gate = Gate(sim_transport, marker="/magma")
    async with running_gateway(uncached(), gate, clock) as gw:
        ids = {"ids": ["ourvoice-sn", "magma"]}
        first = asyncio.create_task(gw.post(QUERY, ids))
        await gate.entered.wait()  # Our Voice answered, Magma held
        clock.advance(30)
        ourvoice_fake(sim).balances["ourvoice-sn"] = Decimal("12345")
        later = asyncio.create_task(gw.post(QUERY, ids))
        await until(lambda: shared(gw).waiting == 1)
        gate.opened.set()
        answers = await asyncio.gather(first, later)
        assert await events(gw, "joined") == 0
    assert [amount(a) for a in answers] == ["50000", "12345"]


async def test_an_answer_with_errors_is_not_handed_on_each_waiting_request_runs_its_own(
    sim_transport: httpx.AsyncBaseTransport, clock: FakeClock
) -> None:
    gate = Gate(sim_transport)
    async with running_gateway(uncached(), gate, clock) as gw:
        ids = {"ids": ["ourvoice-sn", "no-such-account"]}
        first = asyncio.create_task(gw.post(QUERY, ids))
        await gate.entered.wait()
        others = [asyncio.create_task(gw.post(QUERY, ids)) for _ in range(3)]
        await until(lambda: shared(gw).waiting == 3)
        gate.opened.set()
        answers = await asyncio.gather(first, *others)
        assert await events(gw, "joined") == 0
        assert await events(gw, "miss") == 4
    codes = {e["extensions"]["code"] for a in answers for e in a.json()["errors"]}
    assert [a.status_code for a in answers] == [200] * 4 and codes == {"NOT_FOUND"}


async def test_a_shared_answer_is_named_as_the_first_requests_was(
    sim_transport: httpx.AsyncBaseTransport, clock: FakeClock
) -> None:
    gate = Gate(sim_transport)
    accept = {"accept": "application/graphql-response+json"}
    async with running_gateway(uncached(), gate, clock) as gw:
        body = {"query": QUERY, "variables": {"ids": ["ourvoice-sn"]}}
        first = asyncio.create_task(gw.http.post("/graphql", json=body, headers=accept))
        await gate.entered.wait()
        second = asyncio.create_task(gw.http.post("/graphql", json=body, headers=accept))
        await until(lambda: shared(gw).waiting == 1)
        gate.opened.set()
        answers = await asyncio.gather(first, second)
    assert answers[0].headers["content-type"] == answers[1].headers["content-type"]
    assert answers[0].content == answers[1].content
