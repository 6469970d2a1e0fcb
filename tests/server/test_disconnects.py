"""A client that leaves is the client's doing (#24): on a real uvicorn server, read over
raw sockets, a disconnect at any point — in the head, mid-body, while the query runs, while
its answer streams — is no server error: no ERROR line, no traceback, never a 500; the
access line says 499 (or the status already sent) and `cancelled`, and so do the metrics.
A top-up whose client leaves while the provider is still answering runs to its end and is
journaled: a replay with the same key gets the same answer, and no second credit.

Every wait is for the server to act, polled with a bound; never a timing assertion."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, cast

import httpx
import pytest

from gateway.app import create_app
from gateway.config.settings import Settings
from gateway.server.serving import Server
from gateway.services.journal import open_journal
from gateway.simulator import Simulator
from tests.helpers import (
    TOP_UP,
    FakeClock,
    Gate,
    demo_settings,
    no_sleep,
    ourvoice_fake,
    sample,
    topup,
    with_server,
)
from tests.server.test_admission import slow_accounts

BOUND = 20.0  # the most any wait below may take before the test fails
SLOW = "/magma/"  # this provider is held at the gate in the tests of a running request
TOP_UP_PATH = "/ourvoice/v1/transactions/topUpBalance"
QUERY = "{ balances { complete results { __typename } } }"
STREAMED = """query Streamed { balances {
  results @stream { __typename ... on AccountBalance { account { id } } }
  ... @defer { complete } } }"""


@asynccontextmanager
async def real_server(
    sim: Simulator, clock: FakeClock, marker: str = SLOW, settings: Settings | None = None
) -> AsyncIterator[tuple[Server, Gate, tuple[str, int]]]:
    """The gateway on uvicorn (the guarded protocol `serve` uses) on a free port, its
    providers behind a gate; always stopped, the gate opened first."""
    gate = Gate(httpx.ASGITransport(app=sim.app), marker)
    app = create_app(settings or demo_settings(), transport=gate, clock=clock, sleep=no_sleep)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = Server(app, sock)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        await until(lambda: server.started or task.done(), "the server to listen")
        assert not task.done(), task.result()
        yield server, gate, sock.getsockname()[:2]
    finally:
        gate.opened.set()
        server.should_exit = True
        await asyncio.wait_for(task, BOUND)


async def until(condition: Callable[[], bool], what: str) -> None:
    try:
        async with asyncio.timeout(BOUND):
            while True:
                if condition():
                    return
                await asyncio.sleep(0.01)
    except TimeoutError:
        raise AssertionError(f"no {what} within {BOUND} s") from None


def head(
    path: str, length: int, accept: str = "application/json", *extra: str, method: str = "POST"
) -> bytes:
    lines = [
        f"{method} {path} HTTP/1.1",
        "Host: gateway",
        "Content-Type: application/json",
        f"Accept: {accept}",
        f"Content-Length: {length}",
        *extra,
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def body(query: str, variables: dict[str, Any] | None = None) -> bytes:
    return json.dumps({"query": query, "variables": variables}).encode()


async def send_and_leave(address: tuple[str, int], data: bytes, until_seen: bytes = b"") -> bytes:
    """Write `data`, read until `until_seen` has arrived (if any), then close."""
    reader, writer = await asyncio.open_connection(*address)
    try:
        writer.write(data)
        await writer.drain()
        if until_seen:
            async with asyncio.timeout(BOUND):
                return await reader.readuntil(until_seen)
        return b""
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


def access(caplog: pytest.LogCaptureFixture, path: str) -> list[dict[str, Any]]:
    """The access lines' fields for `path`, in order."""
    return [
        r.access  # type: ignore[attr-defined]  # `extra={"access": ...}`
        for r in caplog.records
        if r.name == "gateway.access" and r.access["path"] == path  # type: ignore[attr-defined]
    ]


def assert_no_server_error(caplog: pytest.LogCaptureFixture) -> None:
    """Nothing the client did is logged as the server's failure."""
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []
    assert "Traceback" not in caplog.text
    assert "ClientDisconnect" not in caplog.text
    lines = [r.getMessage() for r in caplog.records if r.name == "gateway.access"]
    assert not [line for line in lines if '" 500 ' in line], lines


async def metrics(address: tuple[str, int]) -> str:
    async with httpx.AsyncClient(base_url=f"http://{address[0]}:{address[1]}") as http:
        return (await http.get("/metrics")).text


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO)
    return caplog


async def test_a_head_cut_short_is_nothing_at_all(
    sim: Simulator, clock: FakeClock, logs: pytest.LogCaptureFixture
) -> None:
    async with real_server(sim, clock) as (server, _, address):
        _, writer = await asyncio.open_connection(*address)
        writer.write(b"POST /graphql HTTP/1.1\r\nHost: gateway\r\nContent-Le")
        await writer.drain()
        await until(lambda: len(server.server_state.connections) == 1, "connection accepted")
        logs.clear()
        writer.close()
        await until(lambda: not server.server_state.connections, "connection closed")
        assert logs.records == []  # no request was made: not even an access line


async def test_a_client_that_leaves_after_its_head_is_cancelled_not_500(
    sim: Simulator, clock: FakeClock, logs: pytest.LogCaptureFixture
) -> None:
    async with real_server(sim, clock) as (_, _, address):
        await send_and_leave(address, head("/graphql", 1000))
        await until(lambda: len(access(logs, "/graphql")) == 1, "access line")
        cancelled = sample(
            await metrics(address),
            "gateway_requests_total",
            operation_type="unknown",
            operation_name="none",
            outcome="cancelled",
            reason="",
        )
    [line] = access(logs, "/graphql")
    assert (line["status"], line["outcome"], line["bytes"]) == (499, "cancelled", 0)
    assert cancelled == 1
    assert_no_server_error(logs)


async def test_100_clients_that_leave_mid_body_are_100_cancelled_and_no_error(
    sim: Simulator, clock: FakeClock, logs: pytest.LogCaptureFixture
) -> None:
    """A POST announcing 1000 bytes that sends 9 and closes: ten clients at once, ten
    times each."""

    async def client() -> None:
        for _ in range(10):
            await send_and_leave(address, head("/graphql", 1000) + b'{"query":')

    async with real_server(sim, clock) as (_, _, address):
        logs.clear()
        async with asyncio.TaskGroup() as clients:
            for _ in range(10):
                clients.create_task(client())
        await until(lambda: len(access(logs, "/graphql")) == 100, "100 access lines")
        others = [r for r in logs.records if r.name != "gateway.access"]
        text = await metrics(address)
    lines = access(logs, "/graphql")
    assert {(line["status"], line["outcome"], line["bytes"]) for line in lines} == {
        (499, "cancelled", 0)
    }
    labels = {"operation_type": "unknown", "operation_name": "none", "reason": ""}
    assert sample(text, "gateway_requests_total", outcome="cancelled", **labels) == 100
    assert sample(text, "gateway_requests_total", outcome="refused", **labels) == 0
    assert others == []  # the access line is the one line a disconnect writes
    assert_no_server_error(logs)


async def test_clients_that_leave_mid_body_on_the_event_stream_path_are_cancelled(
    sim: Simulator, clock: FakeClock, logs: pytest.LogCaptureFixture
) -> None:
    """Both of its modes read the body the same way: an operation's own stream, and an
    operation posted to a reservation (single connection mode)."""
    stream = "/graphql/stream"
    async with (
        real_server(sim, clock) as (_, _, (host, port)),
        httpx.AsyncClient(base_url=f"http://{host}:{port}") as http,
    ):
        token = (await http.put(stream)).text
        for extra in ((), (f"x-graphql-event-stream-token: {token}",)):
            data = head(stream, 1000, "text/event-stream", *extra) + b'{"query":'
            await send_and_leave((host, port), data)
        await until(lambda: len(access(logs, stream)) == 3, "access lines")  # with the PUT
        text = await metrics((host, port))
    statuses = [(line["method"], line["status"], line["outcome"]) for line in access(logs, stream)]
    assert statuses == [("PUT", 201, None), ("POST", 499, "cancelled"), ("POST", 499, "cancelled")]
    streams = sample(
        text, "gateway_event_streams_total", operation_type="unknown", outcome="cancelled"
    )
    assert streams == 2
    assert_no_server_error(logs)


async def test_a_query_whose_client_leaves_while_it_runs_is_abandoned_and_cancelled(
    sim: Simulator, clock: FakeClock, logs: pytest.LogCaptureFixture
) -> None:
    async with real_server(sim, clock) as (_, gate, address):
        request = body(QUERY)
        _, writer = await asyncio.open_connection(*address)
        writer.write(head("/graphql", len(request)) + request)
        await writer.drain()
        await until(gate.entered.is_set, "provider call held")
        writer.close()
        # Written while the slow provider is still held: the query was abandoned.
        await until(lambda: len(access(logs, "/graphql")) == 1, "access line")
        text = await metrics(address)
    [line] = access(logs, "/graphql")
    assert (line["status"], line["outcome"], line["operation_type"]) == (499, "cancelled", "query")
    labels = {"operation_type": "query", "operation_name": "none", "reason": ""}
    assert sample(text, "gateway_requests_total", outcome="cancelled", **labels) == 1
    assert_no_server_error(logs)


async def test_a_client_that_leaves_while_queued_gives_up_its_place(
    sim: Simulator, clock: FakeClock, logs: pytest.LogCaptureFixture
) -> None:
    """One slot, held at the gate; one place in the queue: its client leaves, and the
    next query may wait there at once (before, the place was kept until a slot came, and
    the query then ran for nobody)."""
    settings = with_server(
        slow_accounts(demo_settings()),
        admission="fixed",
        max_concurrent_requests=1,
        max_queued_requests=1,
        queue_timeout_seconds=60,
    )
    async with (
        real_server(sim, clock, settings=settings) as (server, gate, address),
        httpx.AsyncClient(base_url=f"http://{address[0]}:{address[1]}") as http,
    ):
        admission = cast(Any, server.config.app).state.admission
        held = asyncio.create_task(http.post("/graphql", json={"query": QUERY}))
        await until(gate.entered.is_set, "the slot held at the provider")
        request = body("{ accounts { id } }")
        _, writer = await asyncio.open_connection(*address)
        writer.write(head("/graphql", len(request)) + request)
        await writer.drain()
        await until(lambda: admission.waiting == 1, "the query queued")
        writer.close()
        await until(lambda: admission.waiting == 0, "its place given up")
        waits = asyncio.create_task(http.post("/graphql", json={"query": "{ accounts { id } }"}))
        await until(lambda: admission.waiting == 1, "the next query queued")
        gate.opened.set()
        answered, first = await waits, await held
        await until(lambda: len(access(logs, "/graphql")) == 3, "access lines")
    assert answered.status_code == first.status_code == 200
    left = access(logs, "/graphql")[0]
    assert (left["status"], left["outcome"]) == (499, "cancelled")
    assert_no_server_error(logs)


@pytest.mark.parametrize(
    ("path", "accept", "first"),
    [
        ("/graphql/stream", "text/event-stream", b"event: next\n"),
        ("/graphql", "multipart/mixed", b"\r\n---"),
    ],
)
async def test_a_client_that_leaves_mid_stream_is_cancelled_with_the_status_it_got(
    path: str,
    accept: str,
    first: bytes,
    sim: Simulator,
    clock: FakeClock,
    logs: pytest.LogCaptureFixture,
) -> None:
    async with real_server(sim, clock) as (_, _, address):
        request = body(STREAMED)
        received = await send_and_leave(address, head(path, len(request), accept) + request, first)
        assert received.startswith(b"HTTP/1.1 200 ")  # the stream had begun; the rest is held
        await until(lambda: len(access(logs, path)) == 1, "access line")
        text = await metrics(address)
    [line] = access(logs, path)
    assert (line["status"], line["outcome"]) == (200, "cancelled")  # 200: it was sent
    if path == "/graphql/stream":
        labels = {"operation_type": "query"}
        assert sample(text, "gateway_event_streams_total", outcome="cancelled", **labels) == 1
    else:
        labels = {"operation_type": "query", "operation_name": "other", "reason": ""}
        assert sample(text, "gateway_requests_total", outcome="cancelled", **labels) == 1
    assert_no_server_error(logs)


async def test_a_top_up_whose_client_leaves_mid_call_completes_and_is_journaled(
    sim: Simulator, clock: FakeClock, logs: pytest.LogCaptureFixture
) -> None:
    settings = demo_settings()
    variables = topup("left-early")
    request = body(TOP_UP, variables)
    async with real_server(sim, clock, TOP_UP_PATH, settings) as (server, gate, address):
        _, writer = await asyncio.open_connection(*address)
        writer.write(head("/graphql", len(request)) + request)
        await writer.drain()
        await until(gate.entered.is_set, "top-up call held at the provider")
        writer.close()
        await until(lambda: not server.server_state.connections, "the server to see it leave")
        gate.opened.set()  # the provider answers only now that the client is gone
        await until(lambda: len(access(logs, "/graphql")) == 1, "access line")
        journal = open_journal(settings.idempotency.url)
        try:
            record = await journal.get("dev:anonymous", "left-early")
        finally:
            await journal.close()
        async with httpx.AsyncClient(base_url=f"http://{address[0]}:{address[1]}") as http:
            replay = await http.post("/graphql", json={"query": TOP_UP, "variables": variables})
    left, replayed = access(logs, "/graphql")
    assert (left["status"], left["outcome"], left["operation_type"]) == (
        499,
        "cancelled",
        "mutation",
    )
    assert (replayed["status"], replayed["outcome"]) == (200, "ok")
    assert record is not None and record.state == "succeeded"
    assert record.outcome is not None
    answer = replay.json()["data"]["topUp"]
    assert answer["__typename"] == "TopUpSucceeded" and answer["replayed"] is True
    assert answer["transaction"]["reference"] == record.outcome["transaction"]["reference"]
    assert sim.state.calls_to("ourvoice-sn", "topup") == 1
    assert len(ourvoice_fake(sim).credits["ourvoice-sn"]) == 1
    assert_no_server_error(logs)


def tool_call(name: str, arguments: dict[str, Any]) -> bytes:
    """A raw MCP `tools/call` (stateless `/mcp`: no session to open first)."""
    params = {"name": name, "arguments": arguments}
    message = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": params})
    return head("/mcp", len(message), "application/json, text/event-stream") + message.encode()


async def test_a_tool_call_whose_client_leaves_while_its_query_runs_is_cancelled(
    sim: Simulator, clock: FakeClock, logs: pytest.LogCaptureFixture
) -> None:
    async with real_server(sim, clock) as (_, gate, address):
        _, writer = await asyncio.open_connection(*address)
        writer.write(tool_call("BalancesAtAGlance", {}))
        await writer.drain()
        await until(gate.entered.is_set, "provider call held")
        writer.close()
        await until(gate.cancelled.is_set, "the held provider call cancelled")
        await until(lambda: len(access(logs, "/mcp")) == 1, "access line")
    [line] = access(logs, "/mcp")
    assert (line["status"], line["outcome"], line["operation_type"]) == (499, "cancelled", "query")
    assert line["operation_name"] == "BalancesAtAGlance"
    assert_no_server_error(logs)


async def test_a_top_up_tool_call_whose_client_leaves_mid_call_completes_and_is_journaled(
    sim: Simulator, clock: FakeClock, logs: pytest.LogCaptureFixture
) -> None:
    settings = demo_settings()
    arguments = {**topup("mcp-left-early")["input"], "currency": None}
    async with real_server(sim, clock, TOP_UP_PATH, settings) as (server, gate, address):
        _, writer = await asyncio.open_connection(*address)
        writer.write(tool_call("TopUp", arguments))
        await writer.drain()
        await until(gate.entered.is_set, "top-up call held at the provider")
        writer.close()
        await until(lambda: not server.server_state.connections, "the server to see it leave")
        gate.opened.set()  # the provider answers only now that the client is gone
        await until(lambda: len(access(logs, "/mcp")) == 1, "access line")
        journal = open_journal(settings.idempotency.url)
        try:
            record = await journal.get("dev:anonymous", "mcp-left-early")
        finally:
            await journal.close()
        text = await metrics(address)
    [line] = access(logs, "/mcp")
    assert (line["status"], line["outcome"], line["bytes"]) == (499, "cancelled", 0)  # never 200
    assert (line["operation_type"], line["operation_name"]) == ("mutation", "TopUp")
    labels = {"operation_type": "mutation", "operation_name": "mcp:TopUp", "reason": ""}
    assert sample(text, "gateway_requests_total", outcome="cancelled", **labels) == 1
    assert record is not None and record.state == "succeeded"
    assert sim.state.calls_to("ourvoice-sn", "topup") == 1
    assert len(ourvoice_fake(sim).credits["ourvoice-sn"]) == 1
    assert_no_server_error(logs)
