"""Broken HTTP framing from an upstream, over a real socket and the production transport
(httpx + aiohttp): every fault is a typed upstream error, counted as what it is — never an
unmapped exception (INTERNAL), never `outcome="ok"` or a breaker success — and a top-up
that meets one stays pending, never sent twice."""

from __future__ import annotations

import pytest

from gateway.errors import ErrorCode, UpstreamError
from gateway.observability.metrics import Metrics
from gateway.upstream.breaker import BreakerState, CircuitBreaker
from gateway.upstream.client import UpstreamClient
from tests.helpers import (
    FakeClock,
    demo_settings,
    make_channel,
    running_gateway,
    send,
    with_account,
)
from tests.upstream.raw_upstream import raw_upstream, response

BALANCE = b'{"data": {"success": true, "data": {"balance": 5000}}}'
FAULTS = {
    "bad chunk size": (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n",
        ErrorCode.UPSTREAM_BAD_RESPONSE,
    ),
    "Content-Length shorter than the body": (
        response(BALANCE, b"Content-Length: 7"),
        ErrorCode.UPSTREAM_BAD_RESPONSE,
    ),
    "Content-Length longer than the body": (
        response(BALANCE, b"Content-Length: 500"),
        ErrorCode.UPSTREAM_UNAVAILABLE,
    ),
    "chunked body cut short": (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n40\r\n{}",
        ErrorCode.UPSTREAM_UNAVAILABLE,  # the connection ended mid-body
    ),
    "two Content-Lengths": (
        response(BALANCE, b"Content-Length: 2", b"Content-Length: 3"),
        ErrorCode.UPSTREAM_BAD_RESPONSE,
    ),
    "bad status line": (b"HTTP/1.1 abc OK\r\n\r\n", ErrorCode.UPSTREAM_BAD_RESPONSE),
    "not HTTP at all": (b"\x00\x01garbage\r\n\r\n", ErrorCode.UPSTREAM_BAD_RESPONSE),
    "header without a colon": (
        response(BALANCE, b"No colon here"),
        ErrorCode.UPSTREAM_BAD_RESPONSE,
    ),
    "a 70 KB header": (
        response(BALANCE, b"X-Big: " + b"a" * 70_000),
        ErrorCode.UPSTREAM_BAD_RESPONSE,
    ),
    "gzip that is not gzip": (
        response(b"not gzip!!", b"Content-Encoding: gzip"),
        ErrorCode.UPSTREAM_BAD_RESPONSE,
    ),
    "closed without an answer": (b"", ErrorCode.UPSTREAM_UNAVAILABLE),
}
OUTCOME = {
    ErrorCode.UPSTREAM_BAD_RESPONSE: "bad_response",
    ErrorCode.UPSTREAM_UNAVAILABLE: "connection",
}


@pytest.mark.parametrize("fault", FAULTS)
async def test_each_framing_fault_is_a_typed_error_counted_as_what_it_is(
    fault: str, clock: FakeClock
) -> None:
    answer, code = FAULTS[fault]
    account = demo_settings().accounts["ourvoice-sn"]
    metrics = Metrics()
    breaker = CircuitBreaker(5, 30, clock)
    http = UpstreamClient(wall_clock=clock)  # the production transport
    try:
        async with raw_upstream(answer, ok=response(BALANCE)) as upstream:
            channel = make_channel(account, http, clock, breaker=breaker)
            channel._metrics = metrics  # this test's own counters
            for _ in range(2):
                breaker.record_failure()  # two failures already: a success would clear them
            with pytest.raises(UpstreamError) as raised:
                await channel.send("GET", f"{upstream.url}/v1/current/balance")
            faulty = len(upstream.requests)
            # a connection it poisoned is not reused: the next call gets a clean answer
            after = await channel.send("GET", f"{upstream.url}/ok")
    finally:
        await http.aclose()
    assert raised.value.code is code
    assert not raised.value.not_sent  # the request went out: a top-up must stay pending
    text = metrics.render().decode()
    assert (
        f'gateway_upstream_requests_total{{account="ourvoice-sn",outcome="{OUTCOME[code]}"}} 1.0'
        in text
    )
    assert after.status == 200 and after.body == BALANCE
    assert breaker.state is BreakerState.CLOSED  # the clean answer closed it, not the fault
    assert faulty <= 2  # aiohttp may retry a GET once on a fresh connection closed unanswered


async def test_a_failure_never_counts_as_a_breaker_success(clock: FakeClock) -> None:
    account = demo_settings().accounts["ourvoice-sn"]
    breaker = CircuitBreaker(3, 30, clock)
    http = UpstreamClient(wall_clock=clock)
    try:
        async with raw_upstream(b"") as upstream:  # every connection closed unanswered
            channel = make_channel(account, http, clock, breaker=breaker)
            for _ in range(3):
                with pytest.raises(UpstreamError):
                    await channel.send("GET", f"{upstream.url}/v1/current/balance")
    finally:
        await http.aclose()
    assert breaker.state is BreakerState.OPEN


@pytest.mark.parametrize(
    "fault", ["bad chunk size", "Content-Length shorter than the body", "closed without an answer"]
)
async def test_a_top_up_meeting_broken_framing_is_pending_and_never_resent(
    fault: str, clock: FakeClock
) -> None:
    answer, _ = FAULTS[fault]
    async with raw_upstream(answer) as upstream:
        settings = with_account(demo_settings(), "ourvoice-sn", base_url=upstream.url)
        async with running_gateway(settings, None, clock) as gw:  # type: ignore[arg-type]
            first = await send(gw)
            again = await send(gw)
            balances = await gw.query('{ balances(accountIds: ["ourvoice-sn"]) { complete } }')
    assert first["__typename"] == "TopUpPending"
    assert again == {**first, "replayed": True}
    posts = [r for r in upstream.requests if r.startswith(b"POST ")]
    assert len(posts) == 1  # sent once, never again
    assert "errors" not in balances  # a read meeting it is a coded failure, not INTERNAL
