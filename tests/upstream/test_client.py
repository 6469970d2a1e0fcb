"""The upstream HTTP step: size cap, transport failures, Retry-After, no redirects."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
import pytest

from gateway.errors import ErrorCode, UpstreamContext, UpstreamError
from gateway.upstream.client import UpstreamClient, parse_retry_after
from tests.helpers import FakeClock, free_port

CTX = UpstreamContext("test", "acct")


class Chunks(httpx.AsyncByteStream):
    """A body streamed in chunks with no Content-Length; counts what was read."""

    def __init__(self, chunk: bytes, count: int) -> None:
        self.chunk, self.count, self.sent = chunk, count, 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for _ in range(self.count):
            self.sent += 1
            yield self.chunk


async def send(transport: httpx.AsyncBaseTransport, cap: int = 1024) -> object:
    client = UpstreamClient(transport, max_body_bytes=cap, wall_clock=FakeClock())
    try:
        return await client.send(CTX, "GET", "http://upstream/x", timeout_seconds=1)
    finally:
        await client.aclose()


async def expect(transport: httpx.AsyncBaseTransport, code: ErrorCode, cap: int = 1024) -> None:
    with pytest.raises(UpstreamError) as raised:
        await send(transport, cap)
    assert raised.value.code is code


async def test_a_declared_oversized_body_is_refused_before_reading() -> None:
    body = Chunks(b"x" * 1024, 5000)
    transport = httpx.MockTransport(
        lambda r: httpx.Response(200, headers={"content-length": str(1024 * 5000)}, stream=body)
    )
    await expect(transport, ErrorCode.UPSTREAM_BAD_RESPONSE)
    assert body.sent == 0


async def test_an_undeclared_oversized_body_stops_at_the_cap() -> None:
    body = Chunks(b"x" * 512, 5000)
    await expect(
        httpx.MockTransport(lambda r: httpx.Response(200, stream=body)),
        ErrorCode.UPSTREAM_BAD_RESPONSE,
    )
    assert body.sent <= 3  # read no further than the cap


async def test_a_body_at_the_cap_is_read_whole() -> None:
    response = await send(httpx.MockTransport(lambda r: httpx.Response(200, content=b"y" * 1024)))
    assert response.body == b"y" * 1024  # type: ignore[attr-defined]


async def test_a_refused_connection_is_unavailable() -> None:
    port = free_port()  # a port that was free a moment ago: nothing listens there
    client = UpstreamClient(wall_clock=FakeClock())  # the real aiohttp transport
    try:
        with pytest.raises(UpstreamError) as raised:
            await client.send(CTX, "GET", f"http://127.0.0.1:{port}/", timeout_seconds=2)
    finally:
        await client.aclose()
    assert raised.value.code is ErrorCode.UPSTREAM_UNAVAILABLE


async def test_transport_timeouts_are_upstream_timeout() -> None:
    def timeout(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    await expect(httpx.MockTransport(timeout), ErrorCode.UPSTREAM_TIMEOUT)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("120", 120),
        ("0", 0),
        ("Tue, 04 Jun 2024 00:45:26 GMT", 120),
        ("Tue, 04 Jun 2024 00:40:00 GMT", 0),  # in the past
        ("soon", None),
        (None, None),
    ],
)
def test_retry_after_in_seconds_or_as_an_http_date(value: str | None, expected: int | None) -> None:
    assert parse_retry_after(value, FakeClock()()) == expected


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (301, ErrorCode.UPSTREAM_BAD_RESPONSE),
        (302, ErrorCode.UPSTREAM_BAD_RESPONSE),
        (404, ErrorCode.UPSTREAM_REJECTED),
        (403, ErrorCode.UPSTREAM_UNAUTHORIZED),
    ],
)
async def test_statuses_map_to_codes(status: int, code: ErrorCode) -> None:
    transport = httpx.MockTransport(
        lambda r: httpx.Response(status, headers={"location": "http://elsewhere/"})
    )
    client = UpstreamClient(transport, wall_clock=FakeClock())
    response = await client.send(CTX, "GET", "http://upstream/x", timeout_seconds=1)
    await client.aclose()
    with pytest.raises(UpstreamError) as raised:
        client.raise_for_status(CTX, response)
    assert raised.value.code is code


async def test_cookies_set_by_one_upstream_are_never_sent_again() -> None:
    seen: list[str | None] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("cookie"))
        return httpx.Response(200, headers={"set-cookie": "session=account-a; Path=/"})

    client = UpstreamClient(httpx.MockTransport(handler), wall_clock=FakeClock())
    for _ in range(2):
        await client.send(CTX, "GET", "http://upstream/x", timeout_seconds=1)
    await client.aclose()
    assert seen == [None, None]


async def test_requests_carry_the_callers_headers_the_gateway_agent_and_the_timeouts() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"ok": True})

    client = UpstreamClient(httpx.MockTransport(handler), wall_clock=FakeClock())
    response = await client.send(
        CTX,
        "POST",
        "http://upstream/x?page=2",
        headers={"Authorization": "Bearer k", "Accept-Language": "en"},
        json_body={"amount": "10.50"},
        timeout_seconds=3,
    )
    await client.aclose()
    (request,) = seen
    assert response.status == 200 and response.body == b'{"ok":true}'
    assert str(request.url) == "http://upstream/x?page=2"
    assert request.headers["authorization"] == "Bearer k"
    assert request.headers["accept-language"] == "en"
    assert request.headers["user-agent"] == "balance-gateway"
    assert json.loads(request.content) == {"amount": "10.50"}
    assert request.extensions["timeout"] == {"connect": 3, "read": 3, "write": 3, "pool": 3}
    assert request.extensions["timeout"] == httpx.Timeout(3).as_dict()  # what httpx means
