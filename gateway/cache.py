"""Read-through cache for upstream reads: freshness, single flight, stale-if-error.

Keys are built by the caller from the account id, a fingerprint of its credentials (never
a secret, never caller input) and the operation; `Store` adds the versioned namespace.
Entries carry their own `fetched_at`; freshness is judged against the gateway's clock, and
the backend TTL (fresh + stale + margin) only evicts.

- fresh entry → served, no upstream call;
- otherwise one load per key per process (every concurrent caller awaits the same task; a
  caller that gives up does not cancel it), and across replicas a short "being filled"
  marker: a replica that sees it waits up to `fill_wait_seconds` for the other's result,
  then fetches anyway;
- the load fails with 5xx/429/timeout/connection/bad response/open circuit/spent budget →
  the entry, if still inside its stale window, is served with `stale=True` and its
  original `fetched_at`; 401/403 drop the entry and the failure is returned.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Generic, TypeVar

from gateway.clock import Clock, utc
from gateway.errors import (
    CircuitOpen,
    UpstreamBadResponse,
    UpstreamRateLimited,
    UpstreamTimeout,
    UpstreamUnauthorized,
    UpstreamUnavailable,
)
from gateway.metrics import Metrics
from gateway.store import Store

T = TypeVar("T")
EVICTION_MARGIN_SECONDS = 60.0
STALE_ON = (
    UpstreamUnavailable,
    UpstreamTimeout,
    UpstreamBadResponse,
    UpstreamRateLimited,
    CircuitOpen,
)


@dataclass(frozen=True)
class Freshness:
    fresh_seconds: float
    stale_seconds: float


@dataclass(frozen=True)
class Cached(Generic[T]):
    value: T
    fetched_at: datetime
    stale: bool = False


@dataclass(frozen=True)
class Codec(Generic[T]):
    encode: Callable[[T, datetime], str]
    decode: Callable[[str], tuple[T, datetime] | None]


class ReadThroughCache:
    def __init__(
        self,
        store: Store,
        clock: Clock,
        metrics: Metrics,
        *,
        fill_wait_seconds: float = 2.0,
        poll_seconds: float = 0.02,
    ) -> None:
        self.store = store
        self._clock = clock
        self._metrics = metrics
        self.fill_wait_seconds = fill_wait_seconds
        self.poll_seconds = poll_seconds
        self._flights: dict[str, asyncio.Future[Any]] = {}

    async def read(
        self,
        key: str,
        account: str,
        freshness: Freshness,
        fetch: Callable[[], Awaitable[T]],
        codec: Codec[T],
    ) -> Cached[T]:
        entry = await self._entry(key, codec)
        if entry is not None and self._age(entry) < freshness.fresh_seconds:
            self._metrics.cache_events.labels(account, "hit").inc()
            return entry
        flight = self._flights.get(key)
        if flight is None:
            load = self._load(key, account, freshness, fetch, codec, entry)
            flight = asyncio.ensure_future(load)
            self._flights[key] = flight
            flight.add_done_callback(lambda _: self._flights.pop(key, None))
        result: Cached[T] = await asyncio.shield(flight)
        return result

    async def drop(self, *keys: str) -> None:
        await self.store.delete(*keys)

    def _age(self, entry: Cached[T]) -> float:
        return (utc(self._clock) - entry.fetched_at).total_seconds()

    async def _entry(self, key: str, codec: Codec[T]) -> Cached[T] | None:
        raw = await self.store.get(key)
        decoded = codec.decode(raw) if raw is not None else None
        return None if decoded is None else Cached(decoded[0], decoded[1])

    async def _load(
        self,
        key: str,
        account: str,
        freshness: Freshness,
        fetch: Callable[[], Awaitable[T]],
        codec: Codec[T],
        entry: Cached[T] | None,
    ) -> Cached[T]:
        marker = f"{key}:filling"
        owner = secrets.token_hex(8)
        if self.store.shared and not await self.store.claim(marker, owner, self.fill_wait_seconds):
            filled = await self._await_other_replica(key, codec, since=utc(self._clock))
            if filled is not None:
                self._metrics.cache_events.labels(account, "hit").inc()
                return filled
        self._metrics.cache_events.labels(account, "miss").inc()
        try:
            value = await fetch()
        except UpstreamUnauthorized:
            await self.store.delete(key, marker)
            raise
        except STALE_ON:
            await self.store.delete(marker)
            window = freshness.fresh_seconds + freshness.stale_seconds
            if entry is not None and self._age(entry) < window:
                self._metrics.cache_events.labels(account, "stale").inc()
                return Cached(entry.value, entry.fetched_at, stale=True)
            raise
        except BaseException:
            await self.store.delete(marker)
            raise
        fetched_at = utc(self._clock)
        ttl = freshness.fresh_seconds + freshness.stale_seconds + EVICTION_MARGIN_SECONDS
        await self.store.set(key, codec.encode(value, fetched_at), ttl)
        await self.store.delete(marker)
        return Cached(value, fetched_at)

    async def _await_other_replica(
        self, key: str, codec: Codec[T], since: datetime
    ) -> Cached[T] | None:
        """Poll for the entry another replica is filling, for a bounded time."""
        loop = asyncio.get_running_loop()
        give_up = loop.time() + self.fill_wait_seconds
        while loop.time() < give_up:
            await asyncio.sleep(self.poll_seconds)
            entry = await self._entry(key, codec)
            if entry is not None and entry.fetched_at >= since - timedelta(seconds=1):
                return entry
        return None


class Generations:
    """A counter per account that `invalidate` bumps: every key built with the current
    generations (the response cache's) stops matching once any of its accounts changes."""

    TTL_SECONDS = 7 * 86_400.0

    def __init__(self, store: Store) -> None:
        self.store = store

    async def of(self, account_ids: list[str]) -> list[str]:
        values = await self.store.multi_get([f"gen:{a}" for a in account_ids])
        return [v or "0" for v in values]

    async def bump(self, account_id: str) -> None:
        await self.store.incr(f"gen:{account_id}", self.TTL_SECONDS)
