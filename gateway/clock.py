"""Time as the gateway sees it: an injectable wall clock (seconds since the epoch)."""

from __future__ import annotations

import math
from collections.abc import Callable

Clock = Callable[[], float]


def whole_seconds(seconds: float, at_least: int = 0) -> int:
    """`seconds` rounded up to whole seconds (as Retry-After and TTLs are), never below
    `at_least`."""
    return max(at_least, math.ceil(seconds))
