"""An answer sent over time that holds its request's admission slot (`admission.py`)
until its last byte is sent or its client has gone: a query answered in parts, or one
query's events on `/graphql/stream`. Released however the sending ends — even when the
client left before the body began, when a body generator never started and so never
runs its own `finally`."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from gateway.server.outcomes import disconnected


class HeldUntilSent(StreamingResponse):
    """`response` as it would be sent, then `release()` (which must be idempotent).

    Sent as Starlette sends it — until the body ends or the client leaves, whichever is
    first — but in the request's own task: the client's `http.disconnect` cancels the
    sending, as `asyncio.timeout` cancels its block. Starlette runs the body and the
    watch as two tasks in an anyio task group (≈ 5 KB more per open stream, which a wave
    of streams raises the process's high-water mark by)."""

    def __init__(self, response: StreamingResponse, release: Callable[[], None]) -> None:
        self.__dict__.update(response.__dict__)  # its body, status and headers, as built
        self.release = release

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await until_disconnect(self.stream_response(send), receive)
        finally:
            self.release()


async def until_disconnect(sending: Awaitable[None], receive: Receive) -> None:
    """`sending`, cancelled when `receive` says the client left (then this returns). The
    body must not swallow that cancel (it would go on sending to nobody, to its end)."""
    task = asyncio.current_task()
    assert task is not None
    watch = asyncio.ensure_future(disconnected(receive))
    left = over = False

    def on_left(done: asyncio.Future[None]) -> None:
        nonlocal left
        if done.cancelled() or done.exception() is not None or over:
            return  # a receive that failed says nothing; after the sending, nothing to stop
        left = True
        task.cancel()

    watch.add_done_callback(on_left)
    try:
        await sending
    except asyncio.CancelledError:
        if left:
            left = False
            if task.uncancel() == 0:
                return  # the client's leaving, and nothing else, cancelled it
        raise
    finally:
        over = True  # a leaving seen in this very turn cancels nothing after it
        watch.remove_done_callback(on_left)
        watch.cancel()
        if left:  # the body ended another way after the cancel (swallowed, or failed)
            task.uncancel()


class Once:
    """`release`, callable any number of times, calling it the first time only."""

    def __init__(self, release: Callable[[], None]) -> None:
        self._release: Callable[[], None] | None = release

    def __call__(self) -> None:
        release, self._release = self._release, None
        if release is not None:
            release()
