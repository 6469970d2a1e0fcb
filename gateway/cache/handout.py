"""A result many requests wait for, handed to them a few at a time between turns of the loop.

When one upstream read lands, every request that joined it (the balance cache's single
flight; a request waiting for an identical one's answer) would resume in the same turn of
the loop, one after the other: two dozen dashboards each completing, encoding and writing
its answer. That turn is tens of milliseconds long on a busy worker, and no socket is read
during it — a request the gate would shed in a millisecond waits for the whole turn, and
so does every answer already made (#24: sheds at 4 × the sustainable load took up to
80–140 ms at the client, the loop's turns after a read up to 60 ms; bench/README.md).

`Handout.wait(flight)` is `await asyncio.shield(flight)` — the result, the error or the
cancellation of `flight`; the waiter's own cancellation leaves `flight` running, and
nothing of the wait on it — except that when `flight` ends its waiters are woken
`per_batch` at a time, a batch every other turn of the loop: in the turn between, those
woken run and the loop reads its sockets, answers what it can answer at once (a shed, a
stored answer) and runs what else is ready. Waiters are woken in the order their flights
ended and, for one flight, in the order they began waiting; a wait on a flight already
ended returns at once, as with `shield`. Nothing is done twice and nothing waits for a
timer: the same work, in shorter turns.

The wait is not hidden from admission: `backlog_seconds()` — how long the oldest waiter
not yet woken has had its result — is ready work waiting for the CPU, as the loop's own
delay is, and the adaptive limit's probe reads the larger of the two
(`server/admission.LoopDelayProbe`).
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections import deque
from collections.abc import Callable
from functools import partial
from typing import Any, TypeVar

T = TypeVar("T")

PER_BATCH = 4  # waiters woken per batch
# A loop's results not yet handed out: (when the flight ended, the flight, the waiter)
Landed = deque[tuple[float, asyncio.Future[Any], asyncio.Future[Any]]]


class Handout:
    def __init__(
        self, per_batch: int = PER_BATCH, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        self.per_batch = per_batch
        self.monotonic = monotonic
        # Per event loop, its results not yet handed out, oldest first: one queue per
        # loop, so that an app whose lifespan runs on another loop (tests do) neither
        # drops nor counts another loop's waiters.
        self._landed: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Landed] = (
            weakref.WeakKeyDictionary()
        )

    async def wait(self, flight: asyncio.Future[T]) -> T:
        """What `flight` ends with, handed out in its batch; cancelling the wait
        leaves `flight` running (and, as `asyncio.shield`, nothing of the wait on it)."""
        # An error's traceback holds this frame: it must hold neither future (each holds
        # the error), or every failed read would leave a cycle for the collector.
        try:
            if flight.done():
                return flight.result()
            waiter: asyncio.Future[T] = flight.get_loop().create_future()
            land = partial(self._land, waiter)
            flight.add_done_callback(land)
            waiter.add_done_callback(partial(_detach, weakref.ref(flight), land))
        finally:
            del flight
        try:
            return await waiter
        finally:
            del waiter, land

    def backlog_seconds(self) -> float:
        """How long the oldest waiter on the running loop not yet woken has had its
        result (0: none waits)."""
        try:
            landed = self._landed.get(asyncio.get_running_loop())
        except RuntimeError:  # no loop running: nothing of this one waits
            return 0.0
        if not landed:
            return 0.0
        return max(0.0, self.monotonic() - landed[0][0])

    def _land(self, waiter: asyncio.Future[Any], flight: asyncio.Future[Any]) -> None:
        loop = waiter.get_loop()
        landed = self._landed.setdefault(loop, deque())
        if not landed:  # the first: its loop's next turns wake them
            loop.call_soon(self._wake, loop, landed)
        landed.append((self.monotonic(), flight, waiter))

    def _wake(self, loop: asyncio.AbstractEventLoop, landed: Landed) -> None:
        """Wakes the next `per_batch` waiters; the rest wait for a later batch."""
        woken = 0
        while landed and woken < self.per_batch:
            _, flight, waiter = landed.popleft()
            if waiter.done():  # cancelled meanwhile
                continue
            woken += 1
            if flight.cancelled():
                waiter.cancel()
            elif (error := flight.exception()) is not None:
                waiter.set_exception(error)
            else:
                waiter.set_result(flight.result())
        if landed:  # after those woken have run and the loop has polled its sockets
            loop.call_soon(loop.call_soon, self._wake, loop, landed)


def _detach(
    flight: weakref.ref[asyncio.Future[Any]],
    land: Callable[[asyncio.Future[Any]], None],
    waiter: asyncio.Future[Any],
) -> None:
    """A wait that ended before its flight (cancelled) leaves nothing on the flight."""
    running = flight()
    if running is not None and not running.done():
        running.remove_done_callback(land)
