"""Per-account upstream call quotas (calls per minute and per day), fixed windows.

Each upstream request takes one unit from both windows before it is sent; past either
limit it is not sent and the caller gets the seconds until that window ends. Windows are
named from the gateway's injectable clock, so tests move time instead of sleeping; the
store's TTL only evicts old windows. Counters live in the shared store (Redis when the
cache is), so replicas share one quota; if the store fails, a local count takes over so
the quota still holds for this process.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from gateway.cache import keys
from gateway.cache.store import Store
from gateway.clock import Clock, whole_seconds

WINDOWS = (("minute", 60), ("day", 86_400))


@dataclass(frozen=True)
class CallLimits:
    per_minute: int | None = None
    per_day: int | None = None

    def of(self, window: str) -> int | None:
        return self.per_minute if window == "minute" else self.per_day


class Quota:
    def __init__(self, account_id: str, limits: CallLimits, store: Store, clock: Clock) -> None:
        self.account_id = account_id
        self.limits = limits
        self._store = store
        self._clock = clock
        self._local: Counter[str] = Counter()

    @property
    def limited(self) -> bool:
        return self.limits.per_minute is not None or self.limits.per_day is not None

    async def take(self) -> int | None:
        """Take one call. None if allowed; else whole seconds until the full window ends."""
        if not self.limited:
            return None
        now = self._clock()
        for window, length in WINDOWS:
            limit = self.limits.of(window)
            if limit is None:
                continue
            start = int(now // length) * length
            key = keys.quota_window(self.account_id, window, start)
            used = await self._store.incr(key, length + 60)
            if used is None:  # store failing: count here instead
                if key not in self._local and len(self._local) > 16:
                    self._local.clear()  # old windows
                self._local[key] += 1
                used = self._local[key]
            if used > limit:
                return whole_seconds(start + length - now, at_least=1)
        return None
