"""Memory a wave of connections used, given back to the system once the wave has ended.

300 event streams at once, or an overload test's 400 clients, raise the process's memory by
tens of MiB; when they have gone, what they used is free but much of it is still counted
against the process — glibc keeps freed memory for the next allocation
(`_compat/libc.py`). The gateway's server reports how many connections are open every
tenth of a second (uvicorn's tick, `_compat/uvicorn.py`), and `MemoryRelease` keeps the
most that were open since it last released: once at least `[server]
release_memory_after_connections` (64) of them have closed and the count has held still for
a tick (the wave has finished closing), the C allocator's free pages are given back, in a
worker thread, counted by `gateway_memory_releases_total`, and the most-open count starts
again from what is open. Long-lived streams held throughout do not hide a wave (what
counts is how many closed); a steady load does not trigger it, nor does a keep-alive pool
smaller than the setting; releases are at least `MIN_INTERVAL_SECONDS` (a minute, on the
monotonic clock: this is about the process's work, not the business's time) apart, so a
load that comes and goes in bursts does not trim on every burst — though a busy server
whose open count swings by the setting within a minute is trimmed about once a minute (a
few milliseconds each). A wave that pauses while it closes may be given back in two
steps, a minute apart. 0 turns it off; where the C library has no `malloc_trim` (musl,
macOS) it does nothing.

What it costs: the trim takes the allocator's locks, so the event loop may wait on its next
large allocation for about as long as the main heap takes to trim — about 10 ms after
64 MiB of scattered free memory, once, after a wave (measured on glibc 2.36).
What it cannot give back: Python's own arenas (1 MiB each, for objects up to 512 bytes)
stay while any object in them lives, and a wave leaves a few survivors scattered across
the arenas it created (freelists, the type attribute cache's names, the newest cache
entries) — the high-water mark docs/security.md measures.

One server reports to one `MemoryRelease` (the gateway app's; the metrics listener and
the demo's simulator have none, and each worker process has its own).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from prometheus_client import Counter

from gateway._compat.libc import release_free_memory

log = logging.getLogger("gateway.memory")

MIN_INTERVAL_SECONDS = 60.0


class MemoryRelease:
    def __init__(
        self,
        after_connections: int,
        released: Counter,
        release: Callable[[], bool] = release_free_memory,
        now: Callable[[], float] = time.monotonic,
    ) -> None:
        self.after_connections = after_connections
        self.released = released
        self.release = release
        self.now = now
        self.peak = self.last = 0  # the most open since the last release; the last tick's
        self.last_release: float | None = None
        self.running: asyncio.Future[bool] | None = None

    def seen(self, connections: int) -> None:
        """`connections` are open now (called on the event loop, every tick; "held still"
        is the same count on two ticks in a row)."""
        settled, self.last = connections == self.last, connections
        self.peak = max(self.peak, connections)
        if not self.after_connections or not settled or self.running is not None:
            return
        if self.peak - connections < self.after_connections:
            return
        now = self.now()
        if self.last_release is not None and now - self.last_release < MIN_INTERVAL_SECONDS:
            return
        self.peak = connections
        self.last_release = now
        self.running = asyncio.ensure_future(asyncio.to_thread(self.release))
        self.running.add_done_callback(self._done)

    def _done(self, running: asyncio.Future[bool]) -> None:
        self.running = None
        if running.cancelled():
            return
        if (error := running.exception()) is not None:
            log.warning("giving memory back failed: %r", error)
        elif running.result():
            self.released.inc()
