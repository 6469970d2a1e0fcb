"""Read-through cache for upstream reads: freshness, single flight, stale-if-error.

Keys are built by the caller from the account id, a digest of its credentials (never
a secret, never caller input) and the operation; `Store` adds the versioned namespace.
Entries carry their own `fetched_at`; freshness is judged against the gateway's clock, and
the backend TTL (fresh + stale + margin) only evicts.

- fresh entry → served, no upstream call;
- otherwise one load per key per process (every concurrent caller awaits the same task; a
  caller that gives up does not cancel it), and across replicas a short "being filled"
  marker: a replica that sees it waits up to `fill_wait_seconds` for the other's result,
  then fetches anyway; a replica that takes the marker reads the key once more first (the
  other may have filled it, and let its marker go, since this replica's first read);
- a refresh (`Refresh`) takes only an entry a refresh read within its window (or one
  younger than its `max_age`: the quota's interval), and marks the entry it fills;
- the load fails with 5xx/429/timeout/connection/bad response/open circuit/spent budget →
  the entry, if still inside its stale window, is served with `stale=True` and its
  original `fetched_at`; 401/403 drop the entry and the failure is returned.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any, Generic, TypeVar

from gateway._compat.asyncio import started
from gateway.cache import keys
from gateway.cache.handout import Handout
from gateway.cache.store import Store
from gateway.clock import Clock
from gateway.errors import (
    CircuitOpen,
    UpstreamBadResponse,
    UpstreamError,
    UpstreamRateLimited,
    UpstreamTimeout,
    UpstreamUnauthorized,
    UpstreamUnavailable,
)
from gateway.observability import log_context, request_trace
from gateway.observability.metrics import Metrics

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
class Refresh:
    """A refresh's read: an entry a refresh read within the last `seconds` is fresh (the
    refreshes of one moment, on every replica, share it); any other is read again. Its
    stamp is kept under `key` (`keys.refreshed`), written before the fill's marker goes."""

    key: str
    seconds: float


@dataclass(frozen=True)
class Cached(Generic[T]):
    value: T
    fetched_at: datetime
    stale: bool = False
    stale_because: UpstreamError | None = None  # the failure a stale value stands in for


@dataclass(frozen=True)
class Codec(Generic[T]):
    encode: Callable[[T], str]
    decode: Callable[[str], T | None]


@dataclass(frozen=True)
class Entry:
    """A stored entry: `<stamp>|<payload>`, the stamp in epoch seconds (here when it was
    fetched). Freshness is read from the prefix, so a payload is decoded only when served."""

    stamp: float
    payload: str

    @classmethod
    def parse(cls, raw: str | None) -> Entry | None:
        stamp, sep, payload = (raw or "").partition("|")
        try:
            return cls(float(stamp), payload) if sep else None
        except ValueError:
            return None

    def dump(self) -> str:
        return f"{self.stamp!r}|{self.payload}"


class ReadThroughCache:
    def __init__(
        self,
        store: Store,
        clock: Clock,
        metrics: Metrics,
        *,
        fill_wait_seconds: float = 2.0,
        poll_seconds: float = 0.02,
        handout: Handout | None = None,
    ) -> None:
        self.store = store
        self._clock = clock
        self._metrics = metrics
        self.fill_wait_seconds = fill_wait_seconds
        self.poll_seconds = poll_seconds
        self._flights: dict[str, asyncio.Future[Any]] = {}
        self._handout = handout or Handout()  # a fill handed to its waiters

    async def read(
        self,
        key: str,
        account: str,
        freshness: Freshness,
        fetch: Callable[[], Awaitable[T]],
        codec: Codec[T],
        max_age: float | None = None,
        refresh: Refresh | None = None,
    ) -> Cached[T]:
        """The key's value, fresh: younger than `max_age` seconds when given (a caller's
        own bound, 0: read it now), else than `freshness.fresh_seconds` — or, for a
        `refresh`, read by a refresh within its window. The stale window and the entry's
        lifetime are `freshness`'s either way."""
        fresh_for = freshness.fresh_seconds if max_age is None else max_age
        entry, fresh = await self._look(key, fresh_for, refresh)
        if entry is not None and fresh:
            served = self._serve(entry, codec)
            if served is not None:
                self._metrics.cache_events.labels(account, "hit").inc()
                log_context.stats().cache_hits += 1
                request_trace.cache_state("fresh")
                return served
        request_trace.cache_state("joined" if key in self._flights else "miss")
        # This request's view (the metrics count each fill once, in `_load`): it waited for
        # a fill, its own or one it joined, and got fresh data, stale data or a failure.
        stats = log_context.stats()
        try:
            # The fill is not held in a local: its failure's traceback holds this frame,
            # and frame → fill → failure → frame would be a cycle the collector must free.
            result: Cached[T] = await self._handout.wait(
                self._fill(
                    key,
                    lambda: self._load(
                        key, account, freshness, fetch, codec, entry, fresh_for, refresh
                    ),
                )
            )
        except BaseException:
            stats.cache_misses += 1
            raise
        if result.stale:
            stats.cache_stale += 1
            request_trace.cache_state("stale")
        else:
            stats.cache_misses += 1
        return result

    async def _look(
        self, key: str, fresh_for: float, refresh: Refresh | None
    ) -> tuple[Entry | None, bool]:
        """The stored entry (None: none, or not one), and whether it is fresh: younger than
        `fresh_for`, or read by a refresh within its window (one round trip either way)."""
        window = fresh_for
        if refresh is None:
            entry = Entry.parse(await self.store.get(key))
        else:
            raw, mark = await self.store.multi_get([key, refresh.key])
            entry = Entry.parse(raw)
            if entry is not None and mark == repr(entry.stamp):  # the mark's TTL only evicts
                window = max(window, refresh.seconds)
        if entry is None:
            return None, False
        return entry, self._clock() - entry.stamp < window

    def now(self) -> float:
        """The gateway's clock, as this cache judges freshness by it (Unix seconds)."""
        return self._clock()

    async def drop(self, *keys: str) -> None:
        await self.store.delete(*keys)

    @staticmethod
    def _serve(
        entry: Entry, codec: Codec[T], stale_because: UpstreamError | None = None
    ) -> Cached[T] | None:
        value = codec.decode(entry.payload)
        if value is None:  # written by another version: a miss, not an error
            return None
        fetched_at = datetime.fromtimestamp(entry.stamp, UTC)
        return Cached(value, fetched_at, stale_because is not None, stale_because)

    def _fill(
        self, key: str, load: Callable[[], Coroutine[Any, Any, Cached[T]]]
    ) -> asyncio.Future[Cached[T]]:
        """The key's fill in flight, joined, or started now (`load()`)."""
        flight = self._flights.get(key)
        if flight is None:
            flight = started(load(), traceless=(UpstreamError,))  # refusals: no cycle
            self._flights[key] = flight
            flight.add_done_callback(partial(self._landed, key))
        return flight

    def _landed(self, key: str, flight: asyncio.Future[Any]) -> None:
        """A fill has ended: the next read starts another. Its error is read here, so one
        whose every waiter left (cancelled) is not reported as never retrieved."""
        self._flights.pop(key, None)
        if not flight.cancelled():
            flight.exception()

    async def _load(
        self,
        key: str,
        account: str,
        freshness: Freshness,
        fetch: Callable[[], Awaitable[T]],
        codec: Codec[T],
        entry: Entry | None,
        fresh_for: float,
        refresh: Refresh | None,
    ) -> Cached[T]:
        marker = keys.filling(key) if self.store.shared else None
        if marker and not await self.store.claim(
            marker, secrets.token_hex(8), self.fill_wait_seconds
        ):
            filled = await self._await_other_replica(key, codec, self._clock(), entry)
            if filled is not None:
                request_trace.cache_state("joined")  # another replica's read
                self._metrics.cache_events.labels(account, "hit").inc()
                return filled
        elif marker:
            # Claimed — but another replica may have filled the key and let its marker go
            # between this replica's first read and its claim: read once more.
            latest, fresh = await self._look(key, fresh_for, refresh)
            if latest is not None and fresh:
                served = self._serve(latest, codec)
                if served is not None:
                    request_trace.cache_state("joined")  # another replica's read, just done
                    await self.store.delete(marker)
                    self._metrics.cache_events.labels(account, "hit").inc()
                    return served
        self._metrics.cache_events.labels(account, "miss").inc()
        try:
            value = await fetch()
        except UpstreamUnauthorized:
            await self.store.delete(key, *([marker] if marker else []))
            raise
        except STALE_ON as failure:
            if marker:
                await self.store.delete(marker)
            window = freshness.fresh_seconds + freshness.stale_seconds
            if entry is not None and self._clock() - entry.stamp < window:
                stale = self._serve(entry, codec, stale_because=failure)
                if stale is not None:
                    self._metrics.cache_events.labels(account, "stale").inc()
                    return stale
            raise
        except BaseException:
            if marker:
                await self.store.delete(marker)
            raise
        fetched = Entry(self._clock(), codec.encode(value))
        ttl = freshness.fresh_seconds + freshness.stale_seconds + EVICTION_MARGIN_SECONDS
        await self.store.set(key, fetched.dump(), ttl)
        if refresh is not None:  # before the marker goes: a replica then finds both
            await self.store.set(refresh.key, repr(fetched.stamp), refresh.seconds)
        if marker:
            await self.store.delete(marker)
        return Cached(value, datetime.fromtimestamp(fetched.stamp, UTC))

    async def _await_other_replica(
        self, key: str, codec: Codec[T], since: float, seen: Entry | None
    ) -> Cached[T] | None:
        """Poll for the entry another replica is filling, for a bounded time: one written
        since (a second's leeway for the replicas' clocks), never the one already `seen`."""
        loop = asyncio.get_running_loop()
        give_up = loop.time() + self.fill_wait_seconds
        while loop.time() < give_up:
            await asyncio.sleep(self.poll_seconds)
            entry = Entry.parse(await self.store.get(key))
            if entry is not None and entry.stamp >= since - 1 and entry != seen:
                return self._serve(entry, codec)
        return None


class Generations:
    """A counter per account that `invalidate` bumps: every key built with the current
    generations (the response cache's) stops matching once any of its accounts changes."""

    TTL_SECONDS = 7 * 86_400.0

    def __init__(self, store: Store) -> None:
        self.store = store

    async def of(self, account_ids: list[str]) -> list[str]:
        values = await self.store.multi_get([keys.generation(a) for a in account_ids])
        return [v or "0" for v in values]

    def of_now(self, account_ids: list[str], *, counted: bool = True) -> list[str]:
        """`of` on an in-process store, without awaiting (`Store.in_process` only)."""
        if not account_ids:
            return []
        generations = [keys.generation(a) for a in account_ids]
        values = self.store.multi_get_now(generations, counted=counted)
        return [v or "0" for v in values]

    async def bump(self, account_id: str) -> None:
        await self.store.incr(keys.generation(account_id), self.TTL_SECONDS)
