"""A trace of one request (`X-Gateway-Trace: 1` with the `debug` scope): per account, the
cache's state and every upstream attempt — exactly the calls the simulator counted — and
the time in the gateway; never served from the response cache, never for a caller without
the scope, and never a secret (a canary run)."""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from typing import Any

import httpx

from gateway.config.security import ClientConfig
from gateway.server.auth import key_hash
from gateway.simulator import Simulator, create_simulator
from gateway.simulator.state import SimState
from tests.app.test_canary import CANARIES, canary_world
from tests.helpers import (
    DelayTransport,
    FakeClock,
    GatewayClient,
    client,
    demo_settings,
    production,
    refuse_float,
    running_gateway,
)

TRACE = {"x-gateway-trace": "1"}
QUERY = "{ balances { complete } }"


async def traced(gateway: GatewayClient, query: str = QUERY) -> dict[str, Any]:
    response = await gateway.http.post("/graphql", json={"query": query}, headers=TRACE)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = json.loads(response.text, parse_float=refuse_float)
    return answer


def calls_by_account(before: Counter[str], sim: Simulator) -> dict[str, int]:
    """Upstream calls per tenant since `before` (every route: Muda's token exchange too)."""
    counted: Counter[str] = Counter()
    for key, value in sim.state.calls.items():
        if value - before[key]:
            counted[key.split(":", 1)[0]] += value - before[key]
    return dict(counted)


def attempts_by_account(trace: dict[str, Any]) -> dict[str, int]:
    return {a["account"]: len(a["upstream"]) for a in trace["accounts"] if a["upstream"]}


async def test_the_trace_matches_the_upstream_calls_the_simulator_counted(
    sim: Simulator, sim_transport: httpx.AsyncBaseTransport, clock: FakeClock
) -> None:
    async with running_gateway(demo_settings(), sim_transport, clock) as gateway:
        before = Counter(sim.state.calls)
        cold = (await traced(gateway))["extensions"]["trace"]
        assert attempts_by_account(cold) == calls_by_account(before, sim)
        assert {a["cache"] for a in cold["accounts"]} == {"miss"}
        magma = next(a for a in cold["accounts"] if a["account"] == "magma")
        (attempt,) = magma["upstream"]
        assert attempt["status"] == 200 and attempt["outcome"] == "ok"
        assert attempt["breaker"] == "closed" and attempt["quota"] == "none"
        assert attempt["request"].startswith("GET /") and "?" not in attempt["request"]
        assert magma["durationUs"] >= magma["gatewayUs"] >= 0

        again = (await traced(gateway))["extensions"]["trace"]  # not the stored answer
        assert {a["cache"] for a in again["accounts"]} == {"fresh"}
        assert attempts_by_account(again) == {}

        sim.state.set_faults("magma", status=503)
        clock.advance(16)  # past the fresh window: magma retried, then served stale
        before = Counter(sim.state.calls)
        failing = await traced(gateway, '{ balances(accountIds: ["magma"]) { complete } }')
        (magma,) = failing["extensions"]["trace"]["accounts"]
        assert magma["cache"] == "stale"
        assert [a["status"] for a in magma["upstream"]] == [503, 503, 503]
        assert [a["attempt"] for a in magma["upstream"]] == [1, 2, 3]
        assert magma["upstream"][0]["retryWaitUs"] == 0
        assert calls_by_account(before, sim) == {"magma": 3}

        plain = await gateway.query(QUERY)  # no header: no trace
    assert "extensions" not in plain or "trace" not in plain["extensions"]


async def test_joined_reads_say_so_and_a_spent_quota_is_an_attempt_not_sent(
    sim: Simulator, sim_transport: httpx.AsyncBaseTransport, clock: FakeClock
) -> None:
    settings = demo_settings()
    account = dataclasses.replace(settings.accounts["paymob-eg"], fresh_seconds=0, calls_per_day=1)
    settings = dataclasses.replace(settings, accounts={**settings.accounts, "paymob-eg": account})
    query = '{ a: balances(accountIds: ["paymob-eg"]) { complete } }'
    # A call that waits a little, as a real one does: a read takes its first step at once,
    # and an in-process upstream would otherwise have answered before the second field asks.
    upstream = DelayTransport(sim_transport)
    async with running_gateway(settings, upstream, clock) as gateway:
        await traced(gateway, query)  # the day's one call
        spent = (await traced(gateway, query))["extensions"]["trace"]
        (paymob,) = spent["accounts"]
        (refused,) = paymob["upstream"]
        assert (refused["outcome"], refused["quota"], refused["status"]) == (
            "quota_spent",
            "spent",
            None,
        )
        clock.advance(16)  # magma, not fresh: the first field reads, the second joins it
        two = (
            '{ a: balances(accountIds: ["magma"], maxAgeSeconds: 0) { complete } '
            'b: balances(accountIds: ["magma"], maxAgeSeconds: 1) { complete } }'
        )
        before = Counter(sim.state.calls)
        first, second = (await traced(gateway, two))["extensions"]["trace"]["accounts"]
    assert (first["cache"], len(first["upstream"])) == ("miss", 1)
    assert (second["cache"], second["upstream"]) == ("joined", [])
    assert calls_by_account(before, sim) == {"magma": 1}


async def test_no_trace_without_the_debug_scope(
    sim_transport: httpx.AsyncBaseTransport, clock: FakeClock
) -> None:
    key = "bgw_reader-without-debug-0123456789"
    reader = client("reader", key, ("balances:read",), None)
    async with running_gateway(
        production(demo_settings(), reader), sim_transport, clock, key
    ) as gw:
        answer = await traced(gw)
    assert answer["data"]["balances"]["complete"] is True
    assert "trace" not in answer.get("extensions", {})


async def test_no_secret_in_any_trace() -> None:
    tenants, settings, _ = canary_world()
    key = "bgw_debugging-client-0123456789abcdef"
    debug = ClientConfig("debug", key_hash(key), frozenset({"balances:read", "debug"}), None)
    settings = production(settings, debug)
    clock = FakeClock()
    sim = create_simulator(SimState(clock=clock), tenants)
    texts = []
    async with running_gateway(settings, httpx.ASGITransport(app=sim.app), clock, key) as gw:
        texts.append((await gw.http.post("/graphql", json={"query": QUERY}, headers=TRACE)).text)
        for fault in ({"status": 503}, {"status": 401}, {"malformed": True}):
            for tenant in ("ourvoice-sn", "magma", "muda-ug", "paymob-eg"):
                sim.state.set_faults(tenant, **fault)
            clock.advance(400)
            answer = await gw.http.post("/graphql", json={"query": QUERY}, headers=TRACE)
            texts.append(answer.text)
    assert all('"trace"' in text for text in texts)
    for name, value in CANARIES.items():
        for text in texts:
            assert value not in text, f"{name} leaked into a trace"


async def test_a_rates_providers_read_is_listed_like_an_accounts(
    sim_transport: httpx.AsyncBaseTransport, clock: FakeClock
) -> None:
    settings = demo_settings()
    url = "http://127.0.0.1:8001/rates/latest"
    reporting = dataclasses.replace(settings.reporting, currency="EUR", rates_url=url)
    settings = dataclasses.replace(settings, reporting=reporting)
    async with running_gateway(settings, sim_transport, clock) as gateway:
        answer = await traced(gateway, "{ balances { reportingTotals { kind } } }")
    (rates,) = [a for a in answer["extensions"]["trace"]["accounts"] if a["account"] == "rates"]
    assert [a["request"] for a in rates["upstream"]] == ["GET /rates/latest"]
