"""A result many requests wait for, handed to them a few per turn of the event loop.

When one upstream read lands, every request that joined it (the balance cache's single
flight; a request waiting for an identical one's answer) would resume in the same turn of
the loop, one after the other: two dozen dashboards each completing, encoding and writing
its answer. That turn is tens of milliseconds long on a busy worker, and no socket is read
during it — a request the gate would shed in a millisecond waits for the whole turn, and
so does every answer already made (#24: sheds at 4 × the sustainable load took up to
80–140 ms at the client, the loop's turns after a read up to 60 ms; bench/README.md).

`Handout.wait(flight)` is `await asyncio.shield(flight)` — the result, the error or the
cancellation of `flight`; the waiter's own cancellation leaves `flight` running — except
that when `flight` ends its waiters are woken `per_turn` at a time, in the order they
started waiting, one batch per turn of the loop. Between two batches the loop reads its
sockets, answers what it can answer at once (a shed, a stored answer) and runs what
else is ready. Nothing is done twice and nothing waits for a timer: the same work, in
shorter turns.

The wait is not hidden from admission: `backlog_seconds()` — how long the oldest waiter
not yet woken has had its result — is ready work waiting for the CPU, as the loop's own
delay is, and the adaptive limit's probe reads the larger of the two
(`server/admission.LoopDelayProbe`).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from functools import partial
from typing import Any, TypeVar

T = TypeVar("T")

PER_TURN = 4  # waiters woken per turn of the loop


class Handout:
    def __init__(
        self, per_turn: int = PER_TURN, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        self.per_turn = per_turn
        self.monotonic = monotonic
        # (when its flight ended, the flight, the waiter), oldest first
        self._landed: deque[tuple[float, asyncio.Future[Any], asyncio.Future[Any]]] = deque()
        self._pumping: asyncio.AbstractEventLoop | None = None  # whose turns wake them

    async def wait(self, flight: asyncio.Future[T]) -> T:
        """What `flight` ends with, woken in this handout's turn; cancelling the wait
        leaves `flight` running."""
        # An error's traceback holds this frame: it must hold neither future (each holds
        # the error), or every failed read would leave a cycle for the collector.
        try:
            if flight.done():
                return flight.result()
            waiter: asyncio.Future[T] = flight.get_loop().create_future()
            flight.add_done_callback(partial(self._land, waiter))
        finally:
            del flight
        try:
            return await waiter
        finally:
            del waiter

    def backlog_seconds(self) -> float:
        """How long the oldest waiter not yet woken has had its result (0: none waits)."""
        if not self._landed:
            return 0.0
        return max(0.0, self.monotonic() - self._landed[0][0])

    def _land(self, waiter: asyncio.Future[Any], flight: asyncio.Future[Any]) -> None:
        if waiter.done():  # the wait was cancelled: nobody to wake
            if not flight.cancelled():
                flight.exception()  # read, as `asyncio.shield` does: never "not retrieved"
            return
        self._landed.append((self.monotonic(), flight, waiter))
        loop = waiter.get_loop()
        if self._pumping is not loop:
            self._pumping = loop
            loop.call_soon(self._wake, loop)

    def _wake(self, loop: asyncio.AbstractEventLoop) -> None:
        """Wakes the next `per_turn` waiters; the rest wait for the next turn."""
        woken = 0
        while self._landed and woken < self.per_turn:
            _, flight, waiter = self._landed.popleft()
            error = None if flight.cancelled() else flight.exception()
            if waiter.done() or waiter.get_loop() is not loop:
                continue  # cancelled meanwhile, or of a loop that has ended
            woken += 1
            if flight.cancelled():
                waiter.cancel()
            elif error is not None:
                waiter.set_exception(error)
            else:
                waiter.set_result(flight.result())
        if self._landed:  # after those woken have run and the loop has polled its sockets
            loop.call_soon(loop.call_soon, self._wake, loop)
        else:
            self._pumping = None
