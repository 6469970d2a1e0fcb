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
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from gateway.errors import Overloaded
from gateway.metrics import Metrics

RETRY_AFTER_SECONDS = 1
BUSY = "The gateway is busy: retry shortly."


class Admission:
    def __init__(
        self, max_active: int, max_waiting: int, wait_seconds: float, metrics: Metrics
    ) -> None:
        self.max_waiting = max_waiting
        self.wait_seconds = wait_seconds
        self._slots = asyncio.Semaphore(max_active)
        self._waiting = 0
        self._events = metrics.admission_events

    @asynccontextmanager
    async def slot(self, deadline_seconds: float) -> AsyncIterator[None]:
        """Hold one of the active slots for the block; raises `Overloaded` if none comes
        within `min(wait_seconds, deadline_seconds)`."""
        if self._slots.locked():
            if self._waiting >= self.max_waiting:
                self._events.labels("rejected").inc()
                raise Overloaded(BUSY, retry_after_seconds=RETRY_AFTER_SECONDS)
            self._waiting += 1
            try:
                async with asyncio.timeout(min(self.wait_seconds, deadline_seconds)):
                    await self._slots.acquire()
            except TimeoutError:
                self._events.labels("timed_out").inc()
                raise Overloaded(BUSY, retry_after_seconds=RETRY_AFTER_SECONDS) from None
            finally:
                self._waiting -= 1
            self._events.labels("queued").inc()
        else:
            await self._slots.acquire()
            self._events.labels("admitted").inc()
        try:
            yield
        finally:
            self._slots.release()
