"""A response-cache hit answered before the rest of the stack (server/cached_answers.py):
the same answer, access line and metrics as the whole way, the same refusals, and nothing
below it reached."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
from typing import Any

import httpx
import pytest

from gateway.access import SCOPES, RateLimit
from gateway.app import create_app
from gateway.config.documents import TrustedDocumentsSettings, digest
from gateway.server.cached_answers import CachedAnswers
from gateway.server.endpoint import GraphQLEndpoint
from tests.helpers import (
    FULL_KEY,
    FakeClock,
    GatewayClient,
    client,
    demo_settings,
    no_sleep,
    production,
    running_gateway,
    sample,
    with_server,
)
from tests.server.test_slow_readers import served

QUERY = "query Dash { balances { complete totals { currency total { amount } } } }"
BODY = json.dumps({"query": QUERY}).encode()
HEADERS = {"authorization": f"Bearer {FULL_KEY}", "content-type": "application/json"}


def access_lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    return [r.access for r in caplog.records if r.name == "gateway.access"]  # type: ignore[attr-defined]


def scope_for(app: Any, headers: dict[str, str], length: int) -> dict[str, Any]:
    headers = {**headers, "content-length": str(length)}
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

    length = sum(len(m.get("body", b"")) for m in messages)
    await CachedAnswers(below, cors=cors)(scope_for(app, headers, length), receive, send)  # type: ignore[arg-type]
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


def trusted_documents_settings(modes: dict[str, str], documents: dict[str, str]) -> Any:
    clients = [
        dataclasses.replace(client(name, key_of(name), tuple(SCOPES), None), trusted_documents=mode)
        for name, mode in modes.items()
    ]
    settings = production(demo_settings(), *clients)
    return dataclasses.replace(
        settings, documents=TrustedDocumentsSettings(mode="off", documents=documents)
    )


def key_of(name: str) -> str:
    return f"bgw_test-{name}-key-0123456789abcdef"


def as_client(name: str) -> dict[str, str]:
    return {**HEADERS, "authorization": f"Bearer {key_of(name)}"}


async def test_an_answer_stored_for_one_trusted_documents_mode_is_not_served_to_another(
    sim_transport: httpx.AsyncBaseTransport, clock: FakeClock
) -> None:
    """Two clients who may see the same things but whose documents are checked differently
    never share an entry: the stored answer passed one client's check, not the other's."""
    by_id = json.dumps({"documentId": f"sha256:{digest(QUERY)}"}).encode()
    modes = {"free": "off", "locked": "enforce", "listed": "allow"}
    settings = trusted_documents_settings(modes, {digest(QUERY): QUERY})
    async with running_gateway(settings, sim_transport, clock, key=None) as gw:
        post = gw.http.post
        assert (await post("/graphql", content=BODY, headers=as_client("free"))).status_code == 200
        locked = await post("/graphql", content=BODY, headers=as_client("locked"))
        assert (
            await post("/graphql", content=by_id, headers=as_client("listed"))
        ).status_code == 200
        free_by_id = await post("/graphql", content=by_id, headers=as_client("free"))
    assert locked.status_code == 403  # enforce: a free-form document is refused
    assert locked.json()["errors"][0]["extensions"]["code"] == "DOCUMENT_NOT_TRUSTED"
    assert free_by_id.status_code == 400  # off: a document id means nothing to this client


async def test_the_whole_way_reuses_what_the_early_look_learnt(
    sim_transport: httpx.AsyncBaseTransport, clock: FakeClock
) -> None:
    """A miss costs one response-cache look-up and one generations read, as before the
    early look; a mutation none; a hit refused for its rate is not counted as admitted."""
    limited = client("limited", key_of("limited"), ("balances:read",), None)
    limited = dataclasses.replace(limited, rate_limit=RateLimit(0.0001, 2))
    full = client("full", FULL_KEY, tuple(SCOPES), None)
    async with running_gateway(
        production(demo_settings(), full, limited), sim_transport, clock
    ) as gw:

        async def store_reads() -> tuple[float, float]:
            page = (await gw.http.get("/metrics")).text
            name = "gateway_store_operations_total"
            return sample(page, name, operation="get"), sample(page, name, operation="multi_get")

        before = await store_reads()
        other = json.dumps({"query": "query Other { countries { code } }"}).encode()  # no reads
        assert (await gw.http.post("/graphql", content=other, headers=HEADERS)).status_code == 200
        after_miss = await store_reads()
        top_up = json.dumps(
            {
                "query": 'mutation { topUp(input: {accountId: "nope", amount: "1", '
                'paymentMethod: "x", paymentReference: "r", idempotencyKey: "k1"}) '
                "{ __typename } }"
            }
        ).encode()
        await gw.http.post("/graphql", content=top_up, headers=HEADERS)
        after_mutation = await store_reads()

        statuses = [
            (await gw.http.post("/graphql", content=BODY, headers=as_client("limited"))).status_code
            for _ in range(3)
        ]
        page = (await gw.http.get("/metrics")).text
    assert after_miss[0] - before[0] == 1  # the response cache, looked up once
    assert after_mutation[0] - after_miss[0] == 0
    assert statuses == [200, 200, 429]
    admitted = sample(
        page, "gateway_admission_events_total", operation_type="query", outcome="admitted"
    )
    top_ups = sample(
        page, "gateway_admission_events_total", operation_type="mutation", outcome="admitted"
    )
    assert (admitted, top_ups) == (3, 1)  # Other, and the limited client's two; not the 429


async def test_a_stored_answer_being_sent_holds_no_admission_slot(
    sim_transport: httpx.AsyncBaseTransport, clock: FakeClock
) -> None:
    """A reader that stops reading a stored answer holds its connection until the write
    timeout cuts it (the slow-reader guard is above), never a slot other requests need."""
    async with running_gateway(production(demo_settings()), sim_transport, clock) as gw:
        await gw.http.post("/graphql", content=BODY, headers=HEADERS)
        stalled = asyncio.Event()
        admission = endpoint_of(gw).admission

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.body":
                stalled.set()
                await asyncio.Event().wait()  # the reader never takes it

        pending = [whole(BODY)]

        async def receive() -> dict[str, Any]:
            return pending.pop()

        answering = asyncio.create_task(
            CachedAnswers(Below())(scope_for(gw.app, HEADERS, len(BODY)), receive, send)  # type: ignore[arg-type]
        )
        await stalled.wait()
        assert admission.running == 0
        answering.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await answering


def raw_post(headers: bytes) -> bytes:
    return b"POST /graphql HTTP/1.1\r\nHost: g\r\nContent-Type: application/json\r\n" + headers


async def answer_to(host: str, port: int, request: bytes) -> bytes:
    """What the server sends back to `request` (headers without their body, perhaps)
    before it closes the connection or 10 s pass."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(request)
        await writer.drain()
        async with asyncio.timeout(10):
            return await reader.read(65536)
    finally:
        writer.close()


async def test_refusals_before_the_body_do_not_wait_for_it(
    sim_transport: httpx.AsyncBaseTransport, clock: FakeClock
) -> None:
    """Over the gateway's own server: a body that never comes is 408 after
    `body_timeout_seconds`; without credentials it is 401 at once; announced too large
    behind `Expect: 100-continue`, 413 with no `100 Continue` first."""
    app = create_app(
        with_server(production(demo_settings()), body_timeout_seconds=0.3),
        transport=sim_transport,
        clock=clock,
        sleep=no_sleep,
    )
    key = b"Authorization: Bearer " + FULL_KEY.encode() + b"\r\n"
    async with served(app) as (host, port):
        late = await answer_to(host, port, raw_post(key + b"Content-Length: 50\r\n\r\n"))
        stranger = await answer_to(host, port, raw_post(b"Content-Length: 50\r\n\r\n"))
        huge = await answer_to(
            host, port, raw_post(key + b"Expect: 100-continue\r\nContent-Length: 100000000\r\n\r\n")
        )
    assert late.startswith(b"HTTP/1.1 408")
    assert stranger.startswith(b"HTTP/1.1 401")
    assert huge.startswith(b"HTTP/1.1 413")
