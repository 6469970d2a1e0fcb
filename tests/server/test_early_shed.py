"""A query that finds the gate full is shed as its bytes arrive (`server/early_shed.py`):
the same 503 the whole way gives, before anything else is read of it — and everything
the early shed may not answer goes the whole way, the connection kept as it was.

The real server (uvicorn with the gateway's guarded protocol) on raw sockets; its one
slot held by a query waiting at its upstream. These tests also guard the uvicorn
internals the early answer touches (`_compat/uvicorn.py`): parser callbacks, the
response cycle, the pipeline, the keep-alive timer and the server's default headers."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator
from typing import NamedTuple

import httpx
import pytest

from gateway.app import create_app
from gateway.observability.metrics import Metrics
from gateway.server.admission import Admission
from gateway.server.early_shed import EarlyShed, Record, sheddable, whole_post
from gateway.server.serving import ConnectionLimits, Server
from tests.helpers import TOP_UP, Gate, demo_settings, sample, topup, with_server
from tests.server.test_admission import MAGMA, until

BOUND = 10.0  # the most any wait below may take before the test fails
KEEP_ALIVE = 2.0


def post(body: bytes, *headers: bytes, path: bytes = b"/graphql") -> bytes:
    head = [
        b"POST " + path + b" HTTP/1.1",
        b"Host: gateway",
        b"Content-Type: application/json",
        b"Content-Length: %d" % len(body),
        *headers,
    ]
    return b"\r\n".join(head) + b"\r\n\r\n" + body


def query(document: str = MAGMA, **extra: object) -> bytes:
    return json.dumps({"query": document, **extra}).encode()


WRONG_KEY = b"Authorization: Bearer not-a-key"  # (the demo profile serves those with none)


# What the early shed may answer, from the bytes alone


def test_one_whole_json_query_is_sheddable() -> None:
    found = whole_post(post(query(operationName="Dashboard")))
    assert found is not None and sheddable(found, cors=False)


@pytest.mark.parametrize(
    "data",
    [
        post(query())[:-3],  # the body not all here yet
        post(query()) + post(query()),  # another request behind it (pipelined)
        post(query(), path=b"/graphql?x=1"),
        post(query(), path=b"/graphql/stream"),
        post(query()).replace(b"HTTP/1.1", b"HTTP/1.0", 1),
        post(query()).replace(b"POST", b"GET", 1),
        post(query(), b"Content-Type: text/plain"),  # a header twice
        post(query()).replace(b"Content-Length: ", b"Content-Length: +", 1),
        post(query()).replace(b"Host: gateway", b"Host gateway", 1),  # no colon
        post(query()).replace(b"Content-Length: ", b"Content-Length: " + b"0" * 5000, 1),
        post(query()).replace(b"Host: gateway\r\n", b"Host: gateway\nX-A: b\r\n", 1),
        post(query()).replace(b"Host: gateway", b"Host: gate\x00way", 1),
        post(query()).replace(b"Content-Length: ", b"Content-Length:\x0b", 1),
        post(query()).replace(b"Host:", b"Ho(st:", 1),
    ],
    ids=[
        "partial body",
        "pipelined",
        "query string",
        "other path",
        "HTTP/1.0",
        "GET",
        "header twice",
        "odd length",
        "malformed header",
        "a length of 5,000 digits",
        "a bare LF",
        "a NUL in a value",
        "a vertical tab before a value",
        "not a token",
    ],
)
def test_anything_but_exactly_one_whole_post_goes_the_whole_way(data: bytes) -> None:
    assert whole_post(data) is None


@pytest.mark.parametrize(
    ("body", "headers", "cors"),
    [
        (query(TOP_UP, variables=topup("e-1")), (), False),  # a top-up: never shed here
        (query("subscription { balanceChanged { accountId } }"), (), False),
        (query("query A { a } mutation B { b }", operationName="A"), (), False),
        (json.dumps({"extensions": {"persistedQuery": {"sha256Hash": "ab"}}}).encode(), (), False),
        (b"[1, 2]", (), False),
        (b"{not json", (), False),
        (query(), (b"Transfer-Encoding: chunked",), False),
        (query(), (b"Content-Encoding: gzip",), False),
        (query(), (b"Expect: 100-continue",), False),
        (query(), (b"Origin: https://dash.example",), True),  # its answer needs CORS headers
        (query(), (b"Upgrade: h2c",), False),
    ],
    ids=[
        "mutation",
        "subscription",
        "a mutation among queries",
        "hash only",
        "not an object",
        "not JSON",
        "chunked",
        "encoded",
        "expect",
        "origin with CORS",
        "upgrade",
    ],
)
def test_what_the_whole_way_must_judge_is_not_sheddable(
    body: bytes, headers: tuple[bytes, ...], cors: bool
) -> None:
    found = whole_post(post(body, *headers))
    assert found is not None and not sheddable(found, cors=cors)


def test_a_json_body_of_another_charset_declaration_and_an_origin_without_cors_are_sheddable() -> (
    None
):
    data = post(query()).replace(b"application/json", b"application/json; charset=utf-8")
    data = data.replace(b"Host: gateway", b"Host: gateway\r\nOrigin: https://dash.example")
    found = whole_post(data)
    assert found is not None and sheddable(found, cors=False)


# The real server, its one slot held


class Full(NamedTuple):
    address: tuple[str, int]
    gate: Gate
    http: httpx.AsyncClient
    admission: Admission


@pytest.fixture
async def full(sim_transport: httpx.AsyncBaseTransport) -> AsyncIterator[Full]:
    """The served gateway with one slot and no queue, a query holding that slot at its
    upstream until the test opens the gate; an HTTP client for its metrics."""
    gate = Gate(sim_transport)
    settings = with_server(
        demo_settings(), admission="fixed", max_concurrent_requests=1, max_queued_requests=0
    )
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    # a head awaited far longer than a connection is kept alive: an idle one closed is
    # its keep-alive's doing
    limits = ConnectionLimits(keep_alive_seconds=KEEP_ALIVE, header_timeout_seconds=60)
    app = create_app(settings, transport=gate)
    server = Server(app, sock, limits=limits)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    host, port = sock.getsockname()[:2]
    async with httpx.AsyncClient(base_url=f"http://{host}:{port}") as http:  # no key: all
        try:
            await until(lambda: server.started)
            held = asyncio.create_task(http.post("/graphql", json={"query": MAGMA}))
            await until(lambda: gate.waiting == 1)
            yield Full((host, port), gate, http, app.state.admission)
            gate.opened.set()
            assert (await held).status_code == 200
        finally:
            server.should_exit = True
            await asyncio.wait_for(task, BOUND)


class Connection:
    """One client connection, requests sent on it one at a time."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def ask(self, data: bytes) -> tuple[int, dict[str, str], bytes]:
        """(status, headers, body) of the answer to `data`."""
        async with asyncio.timeout(BOUND):
            self.writer.write(data)
            await self.writer.drain()
            head = await self.reader.readuntil(b"\r\n\r\n")
            status_line, *lines = head.decode().split("\r\n")[:-2]
            headers = {k.lower(): v.strip() for k, _, v in (h.partition(":") for h in lines)}
            body = await self.reader.readexactly(int(headers["content-length"]))
        return int(status_line.split()[1]), headers, body

    async def closed(self) -> bool:
        async with asyncio.timeout(BOUND):
            return await self.reader.read() == b""


@contextlib.asynccontextmanager
async def connected(address: tuple[str, int]) -> AsyncIterator[Connection]:
    """A client connection to `address`, closed at the end."""
    reader, writer = await asyncio.open_connection(*address)
    try:
        yield Connection(reader, writer)
    finally:
        writer.close()


@pytest.fixture
async def conn(full: Full) -> AsyncIterator[Connection]:
    """A client connection to `full`."""
    async with connected(full.address) as connection:
        yield connection


async def test_a_query_is_shed_before_its_caller_is_checked_with_the_whole_ways_answer(
    caplog: pytest.LogCaptureFixture, full: Full, conn: Connection
) -> None:
    caplog.set_level("INFO", "gateway")
    early = await conn.ask(post(query(operationName="Board"), WRONG_KEY))
    whole_way = await full.http.post("/graphql", json={"query": MAGMA})  # a valid key
    page = (await full.http.get("/metrics")).text
    status, headers, body = early
    assert status == 503 and headers["retry-after"] in ("1", "2", "3")
    assert json.loads(body) == {
        "errors": [
            {"message": "The gateway is busy: retry shortly.", "extensions": {"code": "OVERLOADED"}}
        ]
    }
    assert headers["content-type"] == "application/json"
    assert headers["cache-control"] == "no-store" and "date" in headers
    assert len(headers["x-request-id"]) >= 8
    assert whole_way.status_code == 503 and whole_way.content == body  # shed there too
    assert set(whole_way.headers) == set(headers)
    assert (
        sample(page, "gateway_admission_events_total", operation_type="query", outcome="rejected")
        == 2
    )
    assert (
        sample(
            page,
            "gateway_requests_total",
            operation_type="unknown",  # shed before the operation is noted, either way
            operation_name="none",
            outcome="refused",
            reason="overloaded",
        )
        == 2
    )
    lines = [r.getMessage() for r in caplog.records if '"POST /graphql" 503' in r.getMessage()]
    early_line, whole_line = (line.split(" ms ", 1)[1] for line in lines)  # after the durations
    assert early_line == whole_line and "refused (overloaded)" in early_line


async def test_the_connection_serves_on_after_an_early_answer_and_its_keep_alive_restarts(
    full: Full, conn: Connection
) -> None:
    status, _, _ = await conn.ask(post(query(), WRONG_KEY))
    assert status == 503
    await asyncio.sleep(KEEP_ALIVE * 0.6)  # idle, but within its keep-alive
    status, _, _ = await conn.ask(post(query(), WRONG_KEY))
    assert status == 503
    await asyncio.sleep(KEEP_ALIVE * 0.6)  # past the first answer's keep-alive
    full.gate.opened.set()  # room again: the whole way, on the same connection
    await until(lambda: not full.admission.full("query"))
    status, _, body = await conn.ask(post(query()))
    assert status == 200 and json.loads(body) == {"data": {"balances": {"complete": True}}}


async def test_an_idle_connection_after_an_early_answer_is_closed_at_its_keep_alive(
    conn: Connection,
) -> None:
    status, _, _ = await conn.ask(post(query(), WRONG_KEY))
    assert await conn.closed()  # after KEEP_ALIVE, well before the head's 60 s
    assert status == 503


async def test_a_mutation_and_a_partial_request_go_the_whole_way_while_queries_are_shed(
    conn: Connection,
) -> None:
    mutation = query(TOP_UP, variables=topup("early-1"))
    refused, _, _ = await conn.ask(post(mutation, WRONG_KEY))  # checked: who asks
    conn.writer.write(post(query(), WRONG_KEY)[:40])  # a request in two reads
    await conn.writer.drain()
    await asyncio.sleep(0.05)  # read by the server (on this loop) before the rest is sent
    split, _, _ = await conn.ask(post(query(), WRONG_KEY)[40:])
    shed, _, _ = await conn.ask(post(query(), WRONG_KEY))
    assert (refused, split, shed) == (401, 401, 503)


async def test_a_client_asking_to_close_gets_its_answer_then_the_close(conn: Connection) -> None:
    status, headers, _ = await conn.ask(post(query(), WRONG_KEY, b"Connection: close"))
    assert await conn.closed()
    assert status == 503 and headers["connection"] == "close"


async def test_with_room_a_query_goes_the_whole_way(full: Full, conn: Connection) -> None:
    full.gate.opened.set()
    await until(lambda: not full.admission.full("query"))  # the held query answered
    status, _, _ = await conn.ask(post(query(), WRONG_KEY))
    assert status == 401


async def test_requests_read_in_one_turn_count_as_slots_taken_until_the_gate_has_seen_them() -> (
    None
):
    """One slot of two free and three queries read in the same turn: the first goes on to
    the gate, the two behind it are shed there and then (the whole way would admit the
    first and shed the others a turn later); next turn the gate's own count decides again."""
    admission = Admission(max_active=2, max_waiting=0, wait_seconds=0.0, metrics=Metrics())
    assert admission.try_enter("query")  # half full: what is read counts
    early = EarlyShed(admission, Record(None, access=False), cors=False)
    read = [early.answer(post(query()), ("127.0.0.1", 1)) for _ in range(3)]
    await asyncio.sleep(0)  # the next turn: the first reached the gate, or did not
    later = early.answer(post(query()), ("127.0.0.1", 1))
    assert read[0] is None and later is None
    assert [
        answer is not None and answer[0].startswith(b"HTTP/1.1 503 ") for answer in read[1:]
    ] == [
        True,
        True,
    ]


async def test_a_head_over_the_limit_is_431_even_while_queries_are_shed(conn: Connection) -> None:
    status, _, _ = await conn.ask(post(query(), b"X-Big: " + b"a" * 40_000))
    assert status == 431


async def test_an_empty_gate_sheds_nothing_early_however_many_arrive_in_a_turn() -> None:
    """Below half full, what is read is not counted: a turn of requests that will never
    take a slot (wrong keys, cached answers) cannot get a query shed while there is room."""
    admission = Admission(max_active=3, max_waiting=0, wait_seconds=0.0, metrics=Metrics())
    early = EarlyShed(admission, Record(None, access=False), cors=False)
    read = [early.answer(post(query(), WRONG_KEY), ("127.0.0.1", 1)) for _ in range(10)]
    assert read == [None] * 10


async def test_a_connection_option_list_with_close_is_honoured(conn: Connection) -> None:
    asked = post(query(), WRONG_KEY, b"Connection: keep-alive, close")
    status, headers, _ = await conn.ask(asked)
    assert await conn.closed()
    assert status == 503 and headers["connection"] == "close"


async def test_the_access_line_names_the_client_behind_a_trusted_proxy_as_the_whole_way_does(
    caplog: pytest.LogCaptureFixture, conn: Connection
) -> None:
    """uvicorn trusts 127.0.0.1 to forward: the client is the one it names (this also
    guards `_compat/uvicorn.forwarded_client`, which drives uvicorn's middleware)."""
    caplog.set_level("INFO", "gateway")
    status, _, _ = await conn.ask(post(query(), b"X-Forwarded-For: 203.0.113.7"))
    assert status == 503
    (line,) = [r for r in caplog.records if '"POST /graphql" 503' in r.getMessage()]
    assert line.getMessage().endswith("refused (overloaded)")
    assert line.access["remote"] == "203.0.113.7"  # type: ignore[attr-defined]
