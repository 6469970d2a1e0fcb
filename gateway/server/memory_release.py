"""Memory a wave of connections used, given back to the system once the wave has ended.

300 event streams at once, or an overload test's 400 clients, raise the process's memory by
tens of MiB; when they have gone, what they used is free but most of it is still counted
against the process — glibc keeps freed memory for the next allocation
(`_compat/libc.py`). The gateway's server reports how many connections are open every
tenth of a second (uvicorn's tick, `_compat/uvicorn.py`), and `MemoryRelease` keeps their
peak since it last released: once at least `[server] release_memory_after_connections`
(64) of them have closed and what is open has fallen to a quarter of that peak, the C
allocator's free pages are given back, once, in a worker thread (a few milliseconds with
the GIL released), counted by `gateway_memory_releases_total`; the peak then starts again
from what is open. A steady load never triggers it (its peak is what is open), nor does a
keep-alive pool smaller than the setting. 0 turns it off.

What it cannot give back: Python's own arenas (1 MiB each, for objects up to 512 bytes)
stay while any object in them lives, and a wave leaves a few survivors scattered across
the arenas it created (freelists, the type attribute cache's names, the newest cache
entries) — the high-water mark docs/security.md measures.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from prometheus_client import Counter

from gateway._compat.libc import release_free_memory


class MemoryRelease:
    def __init__(
        self,
        after_connections: int,
        released: Counter,
        release: Callable[[], bool] = release_free_memory,
    ) -> None:
        self.after_connections = after_connections
        self.released = released
        self.release = release
        self.peak = 0
        self.running: asyncio.Future[bool] | None = None

    def seen(self, connections: int) -> None:
        """`connections` are open now (called on the event loop, every tick)."""
        self.peak = max(self.peak, connections)
        if not self.after_connections or self.running is not None:
            return
        if self.peak - connections < self.after_connections:
            return
        if connections * 4 > self.peak:
            return
        self.peak = connections
        self.running = asyncio.ensure_future(asyncio.to_thread(self.release))
        self.running.add_done_callback(self._done)

    def _done(self, running: asyncio.Future[bool]) -> None:
        self.running = None
        if not running.cancelled() and running.exception() is None and running.result():
            self.released.inc()
