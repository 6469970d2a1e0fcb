"""Time as the gateway sees it: an injectable wall clock (seconds since the epoch)."""

from __future__ import annotations

import math
from collections.abc import Callable

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
