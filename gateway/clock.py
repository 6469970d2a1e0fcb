"""Time as the gateway sees it: an injectable wall clock (seconds since the epoch)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], float]


def utc(clock: Clock) -> datetime:
    return datetime.fromtimestamp(clock(), UTC)
