"""A task that takes its first step at once (Python 3.12's eager tasks, on 3.11).

`asyncio.ensure_future(coro)` runs nothing until the event loop comes round to the new task,
behind everything already waiting — on a busy worker, every request that arrived in the
same turn. A request's upstream calls then leave after those requests have been dealt with
(the convoy of bench/README.md: the first of sixteen identical dashboards had its four
upstream calls sent after the fifteen others had been read, checked and set waiting for
it). `started(coro)` runs the coroutine now, up to its first real wait (an upstream call
written to its socket and waiting for the answer), then hands it to a task that goes on
from there.

What it keeps of a task's semantics: during that first step the new task is the current
task (so `asyncio.timeout`, `asyncio.current_task` and a cancellation name it, not the
caller) and the coroutine runs in the task's own copy of the context (context variables it
sets stay its own). A task cancelled before the loop reached it cancels what its first step
was waiting on and is woken when that has ended, as a task waiting on a future is. The
internals it touches — `asyncio.tasks._enter_task` / `_leave_task`, which a task calls
around each of its steps — are guarded by tests/compat/test_compat.py.

Within a budget per turn of the loop (`Turn`, 2 ms of first steps by default): a turn
that has spent it starts the rest as `ensure_future` does. The first request of a turn
sends its calls at once (the convoy's first request is that one), but a turn is never
stretched by the first steps of every request read in it — under overload, a loop whose
turns grew that way looked late to the adaptive admission's probe and its limit fell to a
fifth (bench/README.md), and a hundred-account dashboard's fan-out would hold the loop
for its whole length.
"""

from __future__ import annotations

import asyncio
import asyncio.tasks
import contextlib
import contextvars
import time
from collections.abc import Callable, Coroutine, Generator, Iterator
from typing import Any, TypeVar

T = TypeVar("T")

_enter_task = asyncio.tasks._enter_task
_leave_task = asyncio.tasks._leave_task


class _FirstStepTaken(Coroutine[Any, Any, T]):
    """The coroutine a task drives when its first step has been taken for it: the task's
    first `send` gets what that step gave (the future it waits on, its result or its
    exception), every later one goes to the coroutine itself."""

    __slots__ = ("_coro", "_first", "_traceless")

    def __init__(
        self, coro: Coroutine[Any, Any, T], traceless: tuple[type[BaseException], ...]
    ) -> None:
        self._coro = coro
        self._first: tuple[str, Any] | None = None
        self._traceless = traceless

    def take(self) -> None:
        try:
            waited = self._coro.send(None)
        except StopIteration as done:
            self._first = ("return", done.value)
        except BaseException as error:  # the task raises it, as if its own step had
            # The frames of a step taken here stay linked to the caller's frames, which
            # hold the task: the error's traceback would keep a reference cycle for the
            # collector. Errors of the caller's `traceless` types (expected refusals, raised
            # every time a failing provider is asked) are kept without it.
            if isinstance(error, self._traceless):
                error = error.with_traceback(None)
            self._first = ("raise", error)
        else:
            # Received, as a task receives what its step waits on: until the task holds it,
            # another task may await the same future (it must not look awaited already).
            _blocking(waited, False)
            self._first = ("wait", waited)

    def send(self, value: Any) -> Any:
        if self._first is None:
            return self._coro.send(value)
        kind, what = self._first
        self._first = None
        if kind == "wait":
            return _blocking(what, True)
        if kind == "return":
            raise StopIteration(what)
        try:
            raise what
        finally:
            del what  # this frame, in the error's traceback, must not hold the error

    def throw(self, typ: Any, val: Any = None, tb: Any = None) -> Any:
        first, self._first = self._first, None
        error = val if val is not None else typ
        error = error() if isinstance(error, type) else error
        try:
            if first is not None and isinstance(error, asyncio.CancelledError):
                # Cancelled before its first turn.
                kind, what = first
                if kind == "wait":
                    # As `Task.cancel` does for a waiting task: cancel what it waits on
                    # (with the message) and wake when that has ended.
                    message = error.args[0] if error.args else None
                    if isinstance(what, asyncio.Future) and what.cancel(message):
                        return _blocking(what, True)
                elif kind == "return":
                    raise error  # ends cancelled, as a task cancelled at its end
            if first is not None and first[0] != "wait":
                self._first = first  # an ended step: its error is handed on, not lost
                return self.send(None)
            if val is None and tb is None:
                return self._coro.throw(typ)
            return self._coro.throw(typ, val, tb)
        finally:
            del typ, val, tb, first, error  # this frame, in a traceback, holds none of it

    def close(self) -> None:
        self._coro.close()

    def __await__(self) -> Generator[Any, None, T]:
        raise TypeError("driven by its task only")

    def __getattr__(self, name: str) -> Any:
        """The coroutine's name, code and frame: the task's repr, its stack and asyncio's
        warnings name the coroutine, not this wrapper."""
        if name in ("__name__", "__qualname__", "cr_code", "cr_frame", "cr_running", "cr_await"):
            return getattr(self._coro, name)
        raise AttributeError(name)


def _blocking(waited: Any, blocking: bool) -> Any:
    if getattr(waited, "_asyncio_future_blocking", None) is not None:
        waited._asyncio_future_blocking = blocking
    return waited


class Turn:
    """How much of the loop's current turn first steps have taken: `budget` seconds of
    them a turn, by `clock`; a new turn begins with the loop's next round of callbacks."""

    def __init__(
        self, budget: float = 0.002, clock: Callable[[], float] = time.perf_counter
    ) -> None:
        self.budget = budget
        self.clock = clock
        self._spent = 0.0
        self._depth = 0  # first steps running inside one another: the outermost counts
        self._since = 0.0  # when the outermost began
        self._loop: asyncio.AbstractEventLoop | None = None  # whose turn is counted

    def allows(self, loop: asyncio.AbstractEventLoop) -> bool:
        if self._loop is not loop:  # the first in this turn: the next one resets it
            self._loop = loop
            self._spent = 0.0
            loop.call_soon(self._next_turn)
        running = self.clock() - self._since if self._depth else 0.0
        return self._spent + running < self.budget

    def enter(self) -> None:
        if self._depth == 0:
            self._since = self.clock()
        self._depth += 1

    def leave(self) -> None:
        self._depth -= 1
        if self._depth == 0:
            self._spent += self.clock() - self._since

    def _next_turn(self) -> None:
        self._loop = None


TURN = Turn()
# The turn whose budget `started` takes first steps from in this context (a request's, and
# the tasks it starts), or None (the default): none taken at once. The endpoint sets its
# app's turn only for a request others may join, and only while the worker has room
# (`Admission.roomy`); every other path starts its tasks as `ensure_future` does.
EAGER: contextvars.ContextVar[Turn | None] = contextvars.ContextVar("eager", default=None)


@contextlib.contextmanager
def first_steps(turn: Turn | None) -> Iterator[None]:
    """`started` takes first steps from `turn`'s budget within this block (None: none)."""
    token = EAGER.set(turn)
    try:
        yield
    finally:
        EAGER.reset(token)


def started(
    coro: Coroutine[Any, Any, T], traceless: tuple[type[BaseException], ...] = ()
) -> asyncio.Task[T]:
    """`coro` as a task whose first step has already run, in the task's own context and
    as the current task — or, once this turn of the loop has spent the budget of `EAGER`'s
    turn or where `EAGER` is None, as a task like any other; must be called from a running
    task.
    An error of a `traceless` type raised by that first step is raised by the task
    without its traceback. Not for an `except` block: the first step would see the
    caller's exception as being handled (and chain its own errors to it)."""
    loop = asyncio.get_running_loop()
    turn = EAGER.get()
    if turn is None or not turn.allows(loop):
        return loop.create_task(coro)
    caller = asyncio.current_task(loop)
    taken = _FirstStepTaken(coro, traceless)
    context = contextvars.copy_context()
    task: asyncio.Task[T] = loop.create_task(taken, context=context)
    if caller is not None:
        _leave_task(loop, caller)
    _enter_task(loop, task)
    turn.enter()
    try:
        context.run(taken.take)
    finally:
        turn.leave()
        _leave_task(loop, task)
        if caller is not None:
            _enter_task(loop, caller)
    return task
