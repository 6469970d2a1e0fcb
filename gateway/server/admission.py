"""Admission control: a busy gateway sheds load at once instead of queueing it.

At most `max_active` GraphQL requests run at a time; up to `max_waiting` more wait, each
at most `wait_seconds` (and never past its request's deadline), in arrival order. Anything
beyond is refused at once with `Overloaded` — HTTP 503 with `Retry-After` — so a client
learns in milliseconds that it should come back, instead of timing out after queueing for
seconds behind work that cannot finish in time. Nothing is remembered between requests:
when load drops, the next request is admitted at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from typing import Any

import orjson

from gateway import log_context
from gateway.errors import ErrorCode, Overloaded
from gateway.metrics import Metrics

RETRY_AFTER_SECONDS = 1
BUSY = "The gateway is busy: retry shortly."
# Shedding must cost next to nothing, or it eats the capacity it protects: one answer,
# built once, sent before routing, authentication or anything else.
BUSY_BODY = orjson.dumps(
    {"errors": [{"message": BUSY, "extensions": {"code": ErrorCode.OVERLOADED.value}}]}
)
BUSY_START = {
    "type": "http.response.start",
    "status": 503,
    "headers": [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(BUSY_BODY)).encode()),
        (b"retry-after", str(RETRY_AFTER_SECONDS).encode()),
        (b"cache-control", b"no-store"),
    ],
}

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class Admission:
    def __init__(
        self, max_active: int, max_waiting: int, wait_seconds: float, metrics: Metrics
    ) -> None:
        self.max_waiting = max_waiting
        self.wait_seconds = wait_seconds
        self._slots = asyncio.Semaphore(max_active)
        self._waiting = 0
        events = metrics.admission_events
        self._admitted, self._queued = events.labels("admitted"), events.labels("queued")
        self._rejected, self._timed_out = events.labels("rejected"), events.labels("timed_out")

    async def enter(self, deadline_seconds: float) -> bool:
        """Take an active slot (True; `release()` it later), or shed (False) when none comes
        within `min(wait_seconds, deadline_seconds)` or no one more may wait."""
        if not self._slots.locked():
            await self._slots.acquire()
            self._admitted.inc()
            return True
        if self._waiting >= self.max_waiting:
            self._rejected.inc()
            return False
        self._waiting += 1
        try:
            async with asyncio.timeout(min(self.wait_seconds, deadline_seconds)):
                await self._slots.acquire()
        except TimeoutError:
            self._timed_out.inc()
            return False
        finally:
            self._waiting -= 1
        self._queued.inc()
        return True

    def release(self) -> None:
        self._slots.release()

    @asynccontextmanager
    async def slot(self, deadline_seconds: float) -> AsyncIterator[None]:
        """`enter` … `release` as a block; raises `Overloaded` when shed."""
        if not await self.enter(deadline_seconds):
            raise Overloaded(BUSY, retry_after_seconds=RETRY_AFTER_SECONDS)
        try:
            yield
        finally:
            self.release()


class AdmissionMiddleware:
    """ASGI: `path`'s requests pass through `admission` (the rest go straight on)."""

    def __init__(
        self, app: ASGIApp, admission: Admission, deadline_seconds: float, path: str = "/graphql"
    ) -> None:
        self.app = app
        self.admission = admission
        self.deadline_seconds = deadline_seconds
        self.path = path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != self.path:
            await self.app(scope, receive, send)
            return
        if not await self.admission.enter(self.deadline_seconds):
            stats = log_context.stats()
            stats.outcome, stats.reason = "refused", "overloaded"
            await send(BUSY_START)
            await send({"type": "http.response.body", "body": BUSY_BODY})
            return
        try:
            await self.app(scope, receive, send)
        finally:
            self.admission.release()
