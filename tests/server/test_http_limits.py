"""Hostile clients on raw sockets against the real server (uvicorn with the gateway's
guarded protocol): a request head is bounded in size and in time, a body in time, and an
encoded body is refused — each with its HTTP status, the server serving others meanwhile.

The timeouts here are a fraction of a second so the test is quick; each wait is for the
server to act, bounded generously, never a timing assertion."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest

from gateway.app import create_app
from gateway.server.serving import ConnectionLimits, Server
from tests.helpers import demo_settings, with_server

LIMITS = ConnectionLimits(max_header_bytes=8 * 1024, header_timeout_seconds=0.3)
BOUND = 10.0  # the most any wait below may take before the test fails


@asynccontextmanager
async def guarded_gateway(transport: httpx.AsyncBaseTransport) -> AsyncIterator[tuple[str, int]]:
    settings = with_server(demo_settings(), body_timeout_seconds=0.3)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = Server(create_app(settings, transport=transport), sock, limits=LIMITS)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        for _ in range(int(BOUND / 0.01)):  # until it listens
            if server.started:
                break
            await asyncio.sleep(0.01)
        yield sock.getsockname()[:2]
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, BOUND)


async def exchange(address: tuple[str, int], *parts: bytes, pause: float = 0.0) -> bytes:
    """Write `parts` one by one, listening `pause` seconds after each (a client that
    trickles stops once the server has answered), then read until the server closes."""
    reader, writer = await asyncio.open_connection(*address)
    received = b""
    try:
        async with asyncio.timeout(BOUND):
            for part in parts:
                writer.write(part)
                await writer.drain()
                if pause:
                    with contextlib.suppress(TimeoutError):
                        received += await asyncio.wait_for(reader.read(65536), pause)
                    if received or reader.at_eof():
                        break
            return received + await reader.read()  # the rest, up to the server's close
    except ConnectionResetError:
        return received
    finally:
        writer.close()


def request(*headers: bytes, body: bytes = b"", method: bytes = b"GET") -> bytes:
    head = [method + b" /healthz HTTP/1.1", b"Host: gateway", b"Connection: close", *headers]
    return b"\r\n".join(head) + b"\r\n\r\n" + body


async def test_a_head_over_the_limit_is_431_and_the_server_goes_on(
    sim_transport: httpx.AsyncBaseTransport,
) -> None:
    async with guarded_gateway(sim_transport) as address:
        huge = await exchange(address, request(b"X-Big: " + b"a" * 100_000))
        jwt_sized = await exchange(address, request(b"Authorization: Bearer " + b"a" * 6_000))
    assert huge.startswith(b"HTTP/1.1 431 ")
    assert jwt_sized.startswith(b"HTTP/1.1 200 ")


async def test_a_trickled_head_is_408_however_steady_the_trickle(
    sim_transport: httpx.AsyncBaseTransport,
) -> None:
    trickle = [b"GET /healthz HTTP/1.1\r\n"] + [b"X-Slow: 1\r\n"] * 200
    async with guarded_gateway(sim_transport) as address:
        answer = await exchange(address, *trickle, pause=0.02)
    assert answer.startswith(b"HTTP/1.1 408 ")


async def test_a_silent_connection_is_closed(sim_transport: httpx.AsyncBaseTransport) -> None:
    async with guarded_gateway(sim_transport) as address:
        silent = await exchange(address)  # connects, sends nothing
    assert silent == b""  # closed by the server, nothing to say to nobody


async def test_a_kept_alive_connection_gets_the_same_head_limit_for_its_next_request(
    sim_transport: httpx.AsyncBaseTransport,
) -> None:
    async with guarded_gateway(sim_transport) as address:
        reader, writer = await asyncio.open_connection(*address)
        try:
            async with asyncio.timeout(BOUND):
                writer.write(b"GET /healthz HTTP/1.1\r\nHost: gateway\r\n\r\n")
                first = await reader.readuntil(b'{"status":"ok"}')
                writer.write(b"GET /healthz HTTP/1.1\r\n")  # and no more
                second = await reader.read()
        finally:
            writer.close()
    assert first.startswith(b"HTTP/1.1 200 ")
    assert second.startswith(b"HTTP/1.1 408 ")


async def test_a_body_that_does_not_arrive_is_408(sim_transport: httpx.AsyncBaseTransport) -> None:
    head = request(b"Content-Type: application/json", b"Content-Length: 100", method=b"POST")
    head = head.replace(b"/healthz", b"/graphql")
    async with guarded_gateway(sim_transport) as address:
        answer = await exchange(address, head + b'{"query": ')
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert b'"code":"VALIDATION"' in answer


@pytest.mark.parametrize("encoding", ["gzip", "br", "x-custom"])
async def test_an_encoded_body_is_415_and_never_run(
    encoding: str, sim_transport: httpx.AsyncBaseTransport
) -> None:
    async with (
        guarded_gateway(sim_transport) as (host, port),
        httpx.AsyncClient(base_url=f"http://{host}:{port}") as http,
    ):
        response = await http.post(
            "/graphql",
            content=b'{"query": "{ countries { code } }"}',
            headers={"content-type": "application/json", "content-encoding": encoding},
        )
    assert response.status_code == 415
    assert "Content-Encoding" in response.json()["errors"][0]["message"]
