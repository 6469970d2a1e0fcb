"""Time as the gateway sees it: an injectable wall clock (seconds since the epoch)."""

from __future__ import annotations

from collections.abc import Callable

Clock = Callable[[], float]
