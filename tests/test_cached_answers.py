"""A response-cache hit answered before the rest of the stack (server/cached_answers.py):
the same answer, access line and metrics as the whole way, the same refusals, and nothing
below it reached."""

from __future__ import annotations

import dataclasses
import json
import logging
from typing import Any

import httpx
import pytest

from gateway.access import SCOPES, RateLimit
from gateway.server.cached_answers import CachedAnswers
from gateway.server.endpoint import GraphQLEndpoint
from tests.helpers import (
    FULL_KEY,
    FakeClock,
    GatewayClient,
    client,
    demo_settings,
    production,
    running_gateway,
)

QUERY = "query Dash { balances { complete totals { currency total { amount } } } }"
BODY = json.dumps({"query": QUERY}).encode()
HEADERS = {"authorization": f"Bearer {FULL_KEY}", "content-type": "application/json"}


def access_lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    return [r.access for r in caplog.records if r.name == "gateway.access"]  # type: ignore[attr-defined]


def scope_for(app: Any, headers: dict[str, str]) -> dict[str, Any]:
    return {
        "type": "http",
        "method": "POST",
        "path": "/graphql",
        "headers": [(k.encode(), v.encode()) for k, v in headers.items()],
        "app": app,
    }


class Below:
    """The stack under CachedAnswers: records whether it was reached and what it read."""

    def __init__(self) -> None:
        self.reached = False
        self.read: list[dict[str, Any]] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self.reached = True
        while True:
            message = await receive()
            self.read.append(message)
            if not message.get("more_body"):
                break
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})


async def call(
    app: Any, headers: dict[str, str], *messages: dict[str, Any], cors: bool = False
) -> tuple[Below, list[dict[str, Any]]]:
    below, sent, pending = Below(), [], list(messages)

    async def receive() -> dict[str, Any]:
        return pending.pop(0) if pending else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await CachedAnswers(below, cors=cors)(scope_for(app, headers), receive, send)  # type: ignore[arg-type]
    return below, sent


def whole(body: bytes) -> dict[str, Any]:
    return {"type": "http.request", "body": body, "more_body": False}


def endpoint_of(gw: GatewayClient) -> GraphQLEndpoint:
    endpoint: GraphQLEndpoint = gw.app.state.graphql
    return endpoint


async def test_a_hit_is_answered_without_reaching_the_stack_below(
    sim_transport: httpx.AsyncBaseTransport, clock: FakeClock
) -> None:
    async with running_gateway(production(demo_settings()), sim_transport, clock) as gw:
        first = await gw.http.post("/graphql", content=BODY, headers=HEADERS)
        assert first.status_code == 200
        below, sent = await call(gw.app, HEADERS, whole(BODY))
        assert not below.reached
        assert sent[0]["status"] == 200
        assert (b"cache-control", b"no-store") in sent[0]["headers"]
        assert sent[1]["body"] == first.content
        assert endpoint_of(gw).admission.running == 0  # its slot was given back

        written_otherwise = BODY.replace(b'{"query"', b'{ "query"')  # another entry
        below, _ = await call(gw.app, HEADERS, whole(written_otherwise))
        assert below.reached and below.read == [whole(written_otherwise)]


async def test_a_hit_looks_like_the_answer_the_whole_way(
    sim_transport: httpx.AsyncBaseTransport, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "gateway.access")
    async with running_gateway(production(demo_settings()), sim_transport, clock) as gw:
        miss = await gw.http.post("/graphql", content=BODY, headers=HEADERS)
        hit = await gw.http.post("/graphql", content=BODY, headers=HEADERS)
        page = (await gw.http.get("/metrics")).text
        hits = await gw.metric("gateway_response_cache_events_total", event="hit")
    ok = sum(
        float(line.rsplit(" ", 1)[1])
        for line in page.splitlines()
        if line.startswith("gateway_requests_total{") and 'outcome="ok"' in line
    )
    assert (hit.status_code, hit.content) == (miss.status_code, miss.content)
    for header in ("content-type", "cache-control", "content-length"):
        assert hit.headers[header] == miss.headers[header]
    assert hit.headers["x-request-id"] != miss.headers["x-request-id"]
    first, second = access_lines(caplog)[:2]
    assert (first["response_cache"], second["response_cache"]) == ("miss", "hit")
    same = ("status", "bytes", "outcome", "operation_type", "operation_name", "accounts")
    assert {k: first[k] for k in same} == {k: second[k] for k in same}
    assert (ok, hits) == (2, 1)


async def test_a_caller_refused_is_refused_once_in_the_usual_words(
    sim_transport: httpx.AsyncBaseTransport, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    limited = client("limited", "bgw_test-limited-key-0123456789", ("balances:read",), None)
    limited = dataclasses.replace(limited, rate_limit=RateLimit(0.001, 1))
    full = client("full", FULL_KEY, tuple(SCOPES), None)
    settings = production(demo_settings(), full, limited)
    headers = {**HEADERS, "authorization": "Bearer bgw_test-limited-key-0123456789"}
    async with running_gateway(settings, sim_transport, clock) as gw:
        assert (await gw.http.post("/graphql", content=BODY, headers=headers)).status_code == 200
        again = await gw.http.post("/graphql", content=BODY, headers=headers)  # stored; no token
        refusals = await gw.metric("gateway_rate_limit_refusals_total")
        bad = await gw.http.post(
            "/graphql", content=BODY, headers={**headers, "authorization": "x"}
        )
    assert again.status_code == 429 and again.headers["retry-after"]
    assert again.json()["errors"][0]["extensions"]["code"] == "RATE_LIMITED"
    assert refusals == 1
    assert bad.status_code == 401
    assert caplog.text.count("authentication refused") == 1


async def test_a_hit_that_finds_no_room_is_shed(
    sim_transport: httpx.AsyncBaseTransport, clock: FakeClock
) -> None:
    async with running_gateway(production(demo_settings()), sim_transport, clock) as gw:
        await gw.http.post("/graphql", content=BODY, headers=HEADERS)
        admission = endpoint_of(gw).admission
        held = 0
        while admission.try_enter("query"):
            held += 1
        shed = await gw.http.post("/graphql", content=BODY, headers=HEADERS)
        for _ in range(held):
            admission.release("query")
        served = await gw.http.post("/graphql", content=BODY, headers=HEADERS)
    assert shed.status_code == 503
    assert shed.json()["errors"][0]["extensions"]["code"] == "OVERLOADED"
    assert served.status_code == 200


async def test_a_body_in_parts_or_a_cors_request_goes_the_whole_way(
    sim_transport: httpx.AsyncBaseTransport, clock: FakeClock
) -> None:
    async with running_gateway(production(demo_settings()), sim_transport, clock) as gw:
        await gw.http.post("/graphql", content=BODY, headers=HEADERS)
        parts = [
            {"type": "http.request", "body": BODY[:10], "more_body": True},
            {"type": "http.request", "body": BODY[10:], "more_body": False},
        ]
        below, _ = await call(gw.app, HEADERS, *parts)
        assert below.reached and below.read == parts  # handed on as it came

        browser = {**HEADERS, "origin": "https://dash.example"}
        below, _ = await call(gw.app, browser, whole(BODY), cors=True)
        assert below.reached
        below, _ = await call(gw.app, browser, whole(BODY), cors=False)
        assert not below.reached
