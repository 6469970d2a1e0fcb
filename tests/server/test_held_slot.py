"""An answer sent over time (`held_slot.py`): sent in the request's own task until its
body ends or its client leaves, its slot released either way; a cancel from outside (the
server stopping) is never mistaken for the client leaving."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator, MutableMapping
from typing import Any

import pytest
from starlette.responses import StreamingResponse

from gateway.server.held_slot import HeldUntilSent, Once, until_disconnect
from tests.server.test_admission import until


class Exchange:
    """One ASGI exchange: what was sent, and a client that leaves when told to."""

    def __init__(self) -> None:
        self.sent: list[MutableMapping[str, Any]] = []
        self.left = asyncio.Event()

    async def receive(self) -> dict[str, Any]:
        await self.left.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: MutableMapping[str, Any]) -> None:
        self.sent.append(message)

    def bodies(self) -> list[bytes]:
        return [m["body"] for m in self.sent if m["type"] == "http.response.body"]


async def endless(ended: list[str]) -> AsyncIterator[bytes]:
    try:
        while True:
            yield b"event"
            await asyncio.sleep(0)
    finally:
        ended.append("body closed")


def held(body: AsyncIterator[bytes], released: list[str]) -> HeldUntilSent:
    return HeldUntilSent(StreamingResponse(body), Once(lambda: released.append("released")))


async def test_a_body_that_ends_is_sent_whole_and_its_slot_released() -> None:
    async def three() -> AsyncIterator[bytes]:
        for part in (b"a", b"b", b"c"):
            yield part

    exchange, released = Exchange(), list[str]()
    await held(three(), released)({"type": "http"}, exchange.receive, exchange.send)
    assert exchange.bodies() == [b"a", b"b", b"c", b""]
    assert released == ["released"]
    await asyncio.sleep(0)  # the disconnect watch's cancel takes its turn
    assert asyncio.all_tasks() == {asyncio.current_task()}


def sending_endlessly() -> tuple[Exchange, list[str], list[str], asyncio.Future[None]]:
    """An endless body being sent: the exchange, what was released, what ended, the call."""
    exchange, released, ended = Exchange(), list[str](), list[str]()
    call = asyncio.ensure_future(
        held(endless(ended), released)({"type": "http"}, exchange.receive, exchange.send)
    )
    return exchange, released, ended, call


async def test_the_client_leaving_ends_the_sending_and_the_call_returns() -> None:
    exchange, released, ended, call = sending_endlessly()
    await until(lambda: len(exchange.bodies()) >= 5)
    exchange.left.set()
    await call  # returns: the client's leaving is no error of the server's
    sent = len(exchange.sent)
    await asyncio.sleep(0)
    assert len(exchange.sent) == sent  # nothing more is sent
    assert ended == ["body closed"] and released == ["released"]


async def test_a_cancel_from_outside_is_raised_even_when_the_client_left_too() -> None:
    exchange, released, ended, call = sending_endlessly()
    await until(lambda: len(exchange.bodies()) >= 2)
    exchange.left.set()
    call.cancel()  # the server stops in the same turn
    with pytest.raises(asyncio.CancelledError):
        await call
    assert ended == ["body closed"] and released == ["released"]


async def test_a_failed_receive_leaves_the_sending_alone_and_is_not_reported_lost() -> None:
    loop = asyncio.get_running_loop()
    reported: list[str] = []
    loop.set_exception_handler(lambda _, context: reported.append(context["message"]))
    ended: list[str] = []

    async def broken() -> dict[str, Any]:
        raise RuntimeError("receive broke")

    async def sending() -> None:
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        ended.append("sent to its end")

    try:
        await until_disconnect(sending(), broken)
        await asyncio.sleep(0)  # the watch's last callbacks run
        gc.collect()  # a task whose error nobody read says so when it is freed
    finally:
        loop.set_exception_handler(None)
    assert ended == ["sent to its end"]  # a broken receive is not a client that left
    assert reported == []


async def test_a_leaving_seen_as_the_body_ends_cancels_nothing_after_the_answer() -> None:
    """The client leaves in the very turn the body's last step runs: the answer is sent,
    and what the request does after it is not cancelled."""
    gate: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def waits_then_ends() -> AsyncIterator[bytes]:
        yield b"first"
        await gate

    exchange, released = Exchange(), list[str]()

    async def request() -> str:
        await held(waits_then_ends(), released)({"type": "http"}, exchange.receive, exchange.send)
        for _ in range(5):
            await asyncio.sleep(0)  # what a request may still await after its answer
        return "went on"

    call = asyncio.ensure_future(request())
    await until(lambda: exchange.bodies() == [b"first"])
    exchange.left.set()
    gate.set_result(None)  # the same turn
    assert await call == "went on"
    assert released == ["released"]


async def test_a_body_that_swallows_the_cancel_ends_and_leaves_nothing_pending() -> None:
    log: list[str] = []

    async def swallows() -> AsyncIterator[bytes]:
        yield b"first"
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            log.append("swallowed")
        yield b"last"

    exchange, released = Exchange(), list[str]()

    async def request() -> int:
        await held(swallows(), released)({"type": "http"}, exchange.receive, exchange.send)
        task = asyncio.current_task()
        assert task is not None
        return task.cancelling()

    call = asyncio.ensure_future(request())
    await until(lambda: exchange.bodies() == [b"first"])
    exchange.left.set()
    assert await call == 0  # no cancel left standing for whatever comes next
    assert log == ["swallowed"] and released == ["released"]
