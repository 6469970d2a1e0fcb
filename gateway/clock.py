"""Time as the gateway sees it: an injectable wall clock (seconds since the epoch), and
the request deadline every upstream attempt of one request shares.

The deadline is plain context state: the services set it (`request_deadline`), the
upstream channel reads it (`remaining_seconds`) before and during each attempt. It lives
here, a leaf both layers use, not in either of them.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

Clock = Callable[[], float]


def whole_seconds(seconds: float, at_least: int = 0) -> int:
    """`seconds` rounded up to whole seconds (as Retry-After and TTLs are), never below
    `at_least`."""
    return max(at_least, math.ceil(seconds))


TEST_CLOCK_ENV = "BALANCE_GATEWAY_TEST_CLOCK"


def file_clock(path: str) -> Clock:
    """A test's clock shared by processes: the seconds since the epoch written in `path`
    (the test replaces the file to move time). `serve` takes it from `TEST_CLOCK_ENV`, under
    the development profile only — never in production."""

    def now() -> float:
        with open(path) as file:
            return float(file.read())

    return now


_DEADLINE: ContextVar[float | None] = ContextVar("upstream_deadline", default=None)


@contextmanager
def request_deadline(seconds: float) -> Iterator[None]:
    """Every upstream attempt made inside this block finishes within `seconds` from now."""
    token = _DEADLINE.set(time.monotonic() + seconds)
    try:
        yield
    finally:
        _DEADLINE.reset(token)


def remaining_seconds() -> float | None:
    """The seconds left before the deadline set around this call (None: no deadline)."""
    deadline = _DEADLINE.get()
    return None if deadline is None else deadline - time.monotonic()
