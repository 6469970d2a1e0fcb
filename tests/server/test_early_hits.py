"""A response-cache hit answered from the request's bytes (`server/early_hits.py`): the
same answer, access line and metrics as the response cache's early look in the ASGI stack
(`cached_answers.py`), none of the stack reached — and everything it may not answer, with
nothing taken on its way, left to the whole way.

Over the real server (uvicorn with the gateway's guarded protocol) on raw sockets, and
`EarlyHits.answer` asked directly on a running gateway for the cases it declines."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import socket
from collections.abc import AsyncIterator
from typing import Any, NamedTuple

import httpx
import pytest

from gateway.access import SCOPES, RateLimit
from gateway.app import create_app
from gateway.config.secret import Secret
from gateway.config.security import JwtConfig
from gateway.server.early_hits import MAX_REMEMBERED, MAX_REMEMBERED_BYTES, EarlyHits
from gateway.server.early_shed import Record
from gateway.server.serving import Server
from tests.helpers import (
    FULL_KEY,
    FakeClock,
    client,
    demo_settings,
    production,
    running_gateway,
    sample,
    with_section,
)
from tests.server.test_admission import until
from tests.server.test_early_shed import BOUND, Connection, connected, post, query

QUERY = "query Dash { balances { complete totals { currency total { amount } } } }"
BODY = query(QUERY)
KEY = b"Authorization: Bearer " + FULL_KEY.encode()
LIMITED_KEY = "bgw_test-limited-key-0123456789"
JSON_BODY = {"content-type": "application/json"}


class Counting:
    """The app, counting the HTTP requests that reach its ASGI stack (its state, which the
    server reads the early answers from, is the app's)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.state = app.state
        self.reached = 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self.reached += scope["type"] == "http"
        await self.app(scope, receive, send)


class Served(NamedTuple):
    app: Counting
    address: tuple[str, int]
    http: httpx.AsyncClient


@pytest.fixture
async def served(
    sim_transport: httpx.AsyncBaseTransport, clock: FakeClock
) -> AsyncIterator[Served]:
    """The production gateway on a real server (its clock frozen: what is stored stays
    fresh); an HTTP client for its metrics."""
    limited = dataclasses.replace(
        client("limited", LIMITED_KEY, ("balances:read",), None), rate_limit=RateLimit(0.001, 2)
    )
    full = client("full", FULL_KEY, tuple(SCOPES), None)
    app = Counting(
        create_app(production(demo_settings(), full, limited), transport=sim_transport, clock=clock)
    )
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = Server(app, sock)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    host, port = sock.getsockname()[:2]
    headers = {"authorization": f"Bearer {FULL_KEY}"}
    async with httpx.AsyncClient(base_url=f"http://{host}:{port}", headers=headers) as http:
        try:
            await until(lambda: server.started)
            yield Served(app, (host, port), http)
        finally:
            server.should_exit = True
            await asyncio.wait_for(task, BOUND)


@pytest.fixture
async def conn(served: Served) -> AsyncIterator[Connection]:
    async with connected(served.address) as connection:
        yield connection


async def in_two_reads(conn: Connection, data: bytes) -> tuple[int, dict[str, str], bytes]:
    """`data` sent in two reads: the early answers cannot see it whole, the stack answers."""
    conn.writer.write(data[:40])
    await conn.writer.drain()
    await asyncio.sleep(0.05)  # read by the server (on this loop) before the rest is sent
    return await conn.ask(data[40:])


def store_operations(page: str) -> dict[str, float]:
    return {
        op: sample(page, "gateway_store_operations_total", operation=op)
        for op in ("get", "multi_get")
    }


def access_lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    """Each access line's fields, with the record's request id and client."""
    return [
        {**r.access, "request_id": r.request_id, "client": r.client}  # type: ignore[attr-defined]
        for r in caplog.records
        if r.name == "gateway.access"
    ]


async def test_a_hit_is_answered_from_its_bytes_as_the_stack_answers_it(
    caplog: pytest.LogCaptureFixture, served: Served, conn: Connection
) -> None:
    caplog.set_level(logging.INFO, "gateway.access")
    miss = await conn.ask(post(BODY, KEY))
    before = store_operations((await served.http.get("/metrics")).text)
    reached = served.app.reached
    stack = await in_two_reads(conn, post(BODY, KEY))  # the stack's early look answers it
    assert served.app.reached == reached + 1
    between = store_operations((await served.http.get("/metrics")).text)
    reached = served.app.reached
    early = await conn.ask(post(BODY, KEY))
    assert served.app.reached == reached  # answered without reaching the stack
    page = (await served.http.get("/metrics")).text
    by_stack_ops = {op: between[op] - before[op] for op in before}
    assert {op: store_operations(page)[op] - between[op] for op in before} == by_stack_ops
    assert by_stack_ops == {"get": 1, "multi_get": 1}

    assert miss[0] == stack[0] == early[0] == 200
    assert miss[2] == stack[2] == early[2]
    same = {k: v for k, v in stack[1].items() if k not in ("date", "x-request-id")}
    assert {k: v for k, v in early[1].items() if k not in ("date", "x-request-id")} == same
    assert same["content-type"] == "application/json" and same["cache-control"] == "no-store"
    assert "date" in early[1] and early[1]["x-request-id"] != stack[1]["x-request-id"]
    _, by_stack, by_bytes = [line for line in access_lines(caplog) if line["method"] == "POST"]
    assert by_bytes["request_id"] == early[1]["x-request-id"]
    for line in (by_stack, by_bytes):
        del line["duration_ms"], line["request_id"]
    assert by_bytes == by_stack and by_bytes["response_cache"] == "hit"
    assert by_bytes["client"] == "full" and by_bytes["operation_name"] == "Dash"
    assert sample(page, "gateway_response_cache_events_total", event="hit") == 2
    assert sample(page, "gateway_response_cache_events_total", event="miss") == 1
    admitted = sample(
        page, "gateway_admission_events_total", operation_type="query", outcome="admitted"
    )
    assert admitted == 3
    ok = sample(
        page,
        "gateway_requests_total",
        operation_type="query",
        operation_name="other",
        outcome="ok",
        reason="",
    )
    assert ok == 3


async def test_the_answer_in_the_media_type_asked_for_and_the_connection_closed_when_asked(
    served: Served, conn: Connection
) -> None:
    graphql_response = b"Accept: application/graphql-response+json"
    await conn.ask(post(BODY, KEY, graphql_response))  # stored (the key is not the media's)
    reached = served.app.reached
    status, headers, _ = await conn.ask(post(BODY, KEY, graphql_response))
    assert served.app.reached == reached
    assert status == 200
    assert headers["content-type"] == "application/graphql-response+json; charset=utf-8"
    status, headers, _ = await conn.ask(post(BODY, KEY, b"Connection: close"))
    assert served.app.reached == reached
    assert status == 200 and headers["connection"] == "close"
    assert await conn.closed()


async def test_a_fault_in_answering_from_the_bytes_leaves_the_request_to_the_whole_way(
    caplog: pytest.LogCaptureFixture, served: Served, conn: Connection
) -> None:
    def broken(*_: object) -> None:
        raise RuntimeError("a bug")

    served.app.state.early_shed.hits = broken
    reached = served.app.reached
    status, _, body = await conn.ask(post(BODY, KEY))
    assert status == 200 and json.loads(body)["data"]["balances"]["complete"] is True
    assert served.app.reached == reached + 1
    assert "answering a request from its bytes failed" in caplog.text


async def test_a_hit_takes_its_callers_rate_token_and_a_refusal_is_the_whole_ways(
    served: Served, conn: Connection
) -> None:
    key = b"Authorization: Bearer " + LIMITED_KEY.encode()
    first = await conn.ask(post(BODY, key))  # a miss: the first of the two tokens
    reached = served.app.reached
    second = await conn.ask(post(BODY, key))  # a hit: the second
    assert served.app.reached == reached
    refused = await conn.ask(post(BODY, key))  # none left: the whole way refuses it
    assert served.app.reached == reached + 1
    page = (await served.http.get("/metrics")).text
    assert (first[0], second[0], refused[0]) == (200, 200, 429)
    assert refused[1]["retry-after"]
    assert json.loads(refused[2])["errors"][0]["extensions"]["code"] == "RATE_LIMITED"
    assert sample(page, "gateway_rate_limit_refusals_total") == 1


async def test_a_hit_while_the_gate_is_full_is_shed(served: Served, conn: Connection) -> None:
    await conn.ask(post(BODY, KEY))
    admission = served.app.state.admission
    held = 0
    while admission.try_enter("query"):
        held += 1
    shed = await conn.ask(post(BODY, KEY))
    for _ in range(held):
        admission.release("query")
    await until(lambda: not admission.full("query"))
    served_again = await conn.ask(post(BODY, KEY))
    assert shed[0] == 503
    assert json.loads(shed[2])["errors"][0]["extensions"]["code"] == "OVERLOADED"
    assert served_again[0] == 200


# What it leaves to the whole way, asked directly


@pytest.fixture
async def hits(sim_transport: httpx.AsyncBaseTransport, clock: FakeClock) -> AsyncIterator[Any]:
    """`EarlyHits` of a running production gateway whose answer to BODY is stored, and the
    gateway."""
    limited = client("limited", LIMITED_KEY, ("balances:read",), None)
    full = client("full", FULL_KEY, tuple(SCOPES), None)
    settings = production(demo_settings(), full, limited)
    async with running_gateway(settings, sim_transport, clock) as gw:
        assert (await gw.http.post("/graphql", content=BODY, headers=JSON_BODY)).status_code == 200
        early = EarlyHits(gw.app.state, Record(None, access=False), cors=False)
        yield early, gw


async def test_the_stored_answer_is_found_from_the_bytes(hits: Any) -> None:
    early, _ = hits
    found = early.answer(post(BODY, KEY), ("127.0.0.1", 1))
    assert found is not None and found[0].startswith(b"HTTP/1.1 200 OK\r\n")
    assert found[1] is False


@pytest.mark.parametrize(
    "data",
    [
        post(BODY.replace(b'{"query"', b'{ "query"'), KEY),  # another entry: a miss
        post(BODY),  # no credentials (production)
        post(BODY, b"Authorization: Bearer not-a-key"),
        post(BODY, b"Authorization: Bearer " + LIMITED_KEY.encode()),  # another caller
        post(BODY, KEY, b"Accept: text/html"),
        post(BODY, KEY, b"X-Gateway-Trace: 1"),  # a request trace asked for
        post(BODY, KEY, b"Expect: 100-continue"),
        post(BODY, KEY, b"Transfer-Encoding: chunked"),
        post(BODY, KEY, b"Upgrade: h2c"),
        post(BODY, KEY, b"Content-Encoding: gzip"),
        post(BODY, KEY).replace(b"application/json", b"text/plain", 1),
        post(BODY, KEY)[:-3],
        post(BODY, KEY) + post(BODY, KEY),
    ],
    ids=[
        "miss",
        "no credentials",
        "unknown key",
        "another caller",
        "not acceptable",
        "trace",
        "expect",
        "chunked",
        "upgrade",
        "encoded",
        "not json",
        "partial",
        "pipelined",
    ],
)
async def test_what_it_cannot_answer_goes_the_whole_way_with_nothing_taken(
    hits: Any, data: bytes
) -> None:
    early, gw = hits
    page = (await gw.http.get("/metrics")).text
    assert early.answer(data, ("127.0.0.1", 1)) is None
    after = (await gw.http.get("/metrics")).text
    for name, labels in (
        ("gateway_response_cache_events_total", {"event": "hit"}),
        ("gateway_admission_events_total", {"operation_type": "query", "outcome": "admitted"}),
        ("gateway_store_operations_total", {"operation": "get"}),
        ("gateway_store_operations_total", {"operation": "multi_get"}),
    ):
        assert sample(after, name, **labels) == sample(page, name, **labels)
    assert gw.app.state.admission.running == 0


async def test_an_origin_goes_the_whole_way_when_cors_is_configured(hits: Any) -> None:
    early, gw = hits
    with_cors = EarlyHits(gw.app.state, Record(None, access=False), cors=True)
    data = post(BODY, KEY, b"Origin: https://dash.example")
    assert with_cors.answer(data, ("127.0.0.1", 1)) is None
    assert early.answer(data, ("127.0.0.1", 1)) is not None  # without CORS: answered


async def test_a_hit_without_room_takes_no_rate_token(
    sim_transport: httpx.AsyncBaseTransport, clock: FakeClock
) -> None:
    limited = dataclasses.replace(
        client("limited", LIMITED_KEY, ("balances:read",), None), rate_limit=RateLimit(0.001, 2)
    )
    settings = production(demo_settings(), limited)
    async with running_gateway(settings, sim_transport, clock, LIMITED_KEY) as gw:
        assert (
            await gw.http.post("/graphql", content=BODY, headers=JSON_BODY)
        ).status_code == 200  # token 1
        early = EarlyHits(gw.app.state, Record(None, access=False), cors=False)
        admission = gw.app.state.admission
        held = 0
        while admission.try_enter("query"):
            held += 1
        key = b"Authorization: Bearer " + LIMITED_KEY.encode()
        assert early.answer(post(BODY, key), ("127.0.0.1", 1)) is None  # no room
        for _ in range(held):
            admission.release("query")
        hit = early.answer(post(BODY, key), ("127.0.0.1", 1))  # token 2: still there
        refused = await gw.http.post("/graphql", content=BODY, headers=JSON_BODY)  # none left
    assert hit is not None and hit[0].startswith(b"HTTP/1.1 200 OK")
    assert refused.status_code == 429


async def test_a_token_that_looks_like_a_jwt_goes_the_whole_way_when_jwts_are_checked(
    sim_transport: httpx.AsyncBaseTransport, clock: FakeClock
) -> None:
    """A JWT's keys may have to be fetched: it is the whole way's to check, even when the
    same text is a configured API key."""
    token = "eyJhbGciOiJIUzI1NiJ9.e30.c2ln"
    keyed = production(demo_settings(), client("keyed", token, ("balances:read",), None))
    jwt = JwtConfig(("HS256",), "https://idp.test", "gateway", secret=Secret("s" * 32))
    for settings, answered in ((keyed, True), (with_section(keyed, "security", jwt=jwt), False)):
        async with running_gateway(settings, sim_transport, clock, token) as gw:
            await gw.http.post("/graphql", content=BODY, headers=JSON_BODY)
            early = EarlyHits(gw.app.state, Record(None, access=False), cors=False)
            found = early.answer(post(BODY, b"Authorization: Bearer " + token.encode()), ("h", 1))
        assert (found is not None) == answered


async def test_the_same_bytes_again_are_answered_only_while_their_answer_is_stored(
    hits: Any, clock: FakeClock
) -> None:
    """What a request's bytes say is remembered; what the store says is asked every time."""
    early, _ = hits
    data = post(BODY, KEY)
    assert early.answer(data, ("127.0.0.1", 1)) is not None
    assert early.answer(data, ("127.0.0.1", 1)) is not None
    clock.advance(3600)  # the stored answer expired
    assert early.answer(data, ("127.0.0.1", 1)) is None


async def test_what_it_remembers_of_requests_is_bounded(hits: Any) -> None:
    early, _ = hits
    for n in range(MAX_REMEMBERED * 2 + 1):
        assert early.answer(post(query(QUERY, variables={"n": n}), KEY), ("h", 1)) is None
        assert len(early._read) <= MAX_REMEMBERED
    assert early.answer(post(BODY, KEY), ("127.0.0.1", 1)) is not None


async def test_what_it_remembers_keeps_callers_apart_and_no_credential(hits: Any) -> None:
    """The same body from another caller is another request: the stored answer of one
    is never handed to another key, a wrong key or none — on one `EarlyHits`."""
    early, _ = hits
    where = ("127.0.0.1", 1)
    assert early.answer(post(BODY, KEY), where) is not None
    assert early.answer(post(BODY, b"Authorization: Bearer not-a-key"), where) is None
    assert early.answer(post(BODY), where) is None
    limited = b"Authorization: Bearer " + LIMITED_KEY.encode()
    assert early.answer(post(BODY, limited), where) is None
    assert early.answer(post(BODY, KEY), where) is not None
    remembered = repr(early._read)
    assert FULL_KEY not in remembered and LIMITED_KEY not in remembered


async def test_a_large_request_is_answered_but_not_remembered(
    sim_transport: httpx.AsyncBaseTransport, clock: FakeClock
) -> None:
    padded = json.dumps({"query": QUERY + " " * MAX_REMEMBERED_BYTES}).encode()
    async with running_gateway(production(demo_settings()), sim_transport, clock) as gw:
        assert (await gw.http.post("/graphql", content=padded, headers=JSON_BODY)).is_success
        early = EarlyHits(gw.app.state, Record(None, access=False), cors=False)
        assert early.answer(post(padded, KEY), ("127.0.0.1", 1)) is not None
        assert early._read == {}
