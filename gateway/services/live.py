"""Live balances: one watcher per account per process, however many subscribers.

A watcher exists while the account has a subscriber. It reads the account's balance
through the same read-through cache as any query — so across processes sharing Redis the
upstream is asked at most once per fresh window, whatever the number of watchers — every
`fresh_seconds` (at least `MIN_INTERVAL_SECONDS`), or at once when woken (a top-up of the
account succeeded). It hands a subscriber the result it last read (the snapshot), then each
result that differs: another amount, or the account starting or stopping failing (a stale
answer counts as failing). A subscriber whose queue is full is dropped — told once, never
buffered without bound. `close_all` ends every subscription (the process is stopping).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable
from dataclasses import dataclass, field

from gateway.domain import AccountBalance, AccountBalanceResult
from gateway.errors import RateLimited
from gateway.observability.metrics import Metrics
from gateway.services.balances import BalanceService

log = logging.getLogger("gateway.services.live")
Sleep = Callable[[float], Awaitable[None]]
MIN_INTERVAL_SECONDS = 1.0
QUEUE_SIZE = 32  # results waiting for a slow subscriber before it is dropped


class TooManyStreams(RateLimited):
    pass


class SlowConsumer(Exception):
    """The subscriber did not keep up and was dropped."""


class Closing(Exception):
    """The process is stopping: reconnect (to another replica)."""


def what_is_told(result: AccountBalanceResult) -> Hashable:
    """What a subscriber is told about: amounts, and whether the account is failing."""
    if isinstance(result, AccountBalance):
        amounts = tuple((b.id, b.total, b.available, b.pending) for b in result.balances)
        return ("balance", amounts, result.stale)
    return ("failure", result.code)


@dataclass(eq=False, slots=True)
class Subscriber:
    """A subscription's results waiting to be read: at most `QUEUE_SIZE`, then the reason
    it ends. A list and one future, not an `asyncio.Queue` (three deques of 64 slots, ≈ 3 KB
    a subscriber: memory that a wave of streams raises the process's high-water mark by)."""

    client: str
    accounts: tuple[str, ...]
    items: list[AccountBalanceResult | BaseException] = field(default_factory=list)
    waiter: asyncio.Future[None] | None = None
    ended: bool = False

    def offer(self, item: AccountBalanceResult | BaseException) -> bool:
        """False when full (the subscriber is then dropped); once ended, nothing more is
        taken (and it is not dropped again)."""
        if self.ended:
            return True
        if len(self.items) >= QUEUE_SIZE:
            return False
        self.items.append(item)
        self._wake()
        return True

    def end(self, reason: BaseException) -> None:
        """Make room for the reason, so the subscriber learns why it ends — the first
        reason: a subscriber told the process is stopping is not told it fell behind."""
        if self.ended:
            return
        self.ended = True
        self.items[:] = [reason]
        self._wake()

    async def next(self) -> AccountBalanceResult | BaseException:
        while not self.items:
            self.waiter = asyncio.get_running_loop().create_future()
            try:
                await self.waiter
            finally:
                self.waiter = None
        return self.items.pop(0)

    def _wake(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)


@dataclass(eq=False)
class Watcher:
    account: str
    subscribers: set[Subscriber] = field(default_factory=set)
    last: AccountBalanceResult | None = None
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None


class BalanceWatch:
    def __init__(
        self,
        service: BalanceService,
        sleep: Sleep,
        *,
        max_streams: int,
        max_streams_per_client: int,
        metrics: Metrics | None = None,
    ) -> None:
        metrics = metrics or Metrics()
        self._streams, self._watched = metrics.live_streams, metrics.live_watchers
        self._service = service
        self._sleep = sleep
        self.max_streams = max_streams
        self.max_streams_per_client = max_streams_per_client
        self._watchers: dict[str, Watcher] = {}
        self._subscribers: set[Subscriber] = set()
        self.closing = False

    @property
    def streams(self) -> int:
        """Subscriptions open now."""
        return len(self._subscribers)

    @contextlib.asynccontextmanager
    async def subscribe(
        self, client: str, accounts: list[str]
    ) -> AsyncIterator[AsyncIterator[AccountBalanceResult]]:
        """Results for `accounts` (which must exist) until the block ends; raises
        `TooManyStreams` past the limits; iterating raises `Closing` when the process
        stops and `SlowConsumer` when the subscriber fell behind."""
        self.check(client)
        subscriber = Subscriber(client, tuple(dict.fromkeys(accounts)))
        self._subscribers.add(subscriber)
        self._streams.inc()
        for account in subscriber.accounts:
            watcher = self._watchers.get(account)
            if watcher is None:
                watcher = self._watchers[account] = Watcher(account)
                # A context of its own: the watcher outlives the request that started it,
                # and must not log with its id nor count its reads on its stats.
                watcher.task = asyncio.create_task(
                    self._watch(watcher), name=f"watch {account}", context=contextvars.Context()
                )
                self._watched.inc()
            watcher.subscribers.add(subscriber)
            if watcher.last is not None:
                subscriber.offer(watcher.last)  # the snapshot, at once
        try:
            yield self._results(subscriber)
        finally:
            self._leave(subscriber)

    def check(self, client: str) -> None:
        """Refuses (`TooManyStreams`) past the limits, or when the process is stopping."""
        if self.closing:
            raise TooManyStreams("The gateway is stopping: connect again.", retry_after_seconds=2)
        if len(self._subscribers) >= self.max_streams:
            raise TooManyStreams(
                "The gateway holds as many live streams as it may.", retry_after_seconds=30
            )
        mine = sum(1 for s in self._subscribers if s.client == client)
        if mine >= self.max_streams_per_client:
            raise TooManyStreams(
                f"At most {self.max_streams_per_client} live streams per client.",
                retry_after_seconds=30,
            )

    async def _results(self, subscriber: Subscriber) -> AsyncIterator[AccountBalanceResult]:
        while True:
            item = await subscriber.next()
            if isinstance(item, BaseException):
                raise item
            yield item

    def _leave(self, subscriber: Subscriber) -> None:
        if subscriber not in self._subscribers:
            return  # already gone (dropped, then its stream ended)
        self._subscribers.discard(subscriber)
        self._streams.dec()
        for account in subscriber.accounts:
            watcher = self._watchers.get(account)
            if watcher is None:
                continue
            watcher.subscribers.discard(subscriber)
            if not watcher.subscribers and watcher.task is not None:
                watcher.task.cancel()  # nobody listens: stop asking
                del self._watchers[account]
                self._watched.dec()

    def wake(self, account: str) -> None:
        """Read the account again now (its balance just changed here)."""
        watcher = self._watchers.get(account)
        if watcher is not None:
            watcher.wake.set()

    def close_all(self) -> None:
        self.closing = True
        for subscriber in list(self._subscribers):
            subscriber.end(Closing())

    async def _watch(self, watcher: Watcher) -> None:
        interval = max(self._service.fresh_seconds(watcher.account), MIN_INTERVAL_SECONDS)
        while True:
            watcher.wake.clear()
            try:
                (result,) = await self._service.balances([watcher.account])
            except Exception:  # a bug: keep the stream, try again next time
                log.exception("live: reading %s failed", watcher.account)
            else:
                if watcher.last is None or what_is_told(result) != what_is_told(watcher.last):
                    watcher.last = result
                    for subscriber in list(watcher.subscribers):
                        if not subscriber.offer(result):
                            subscriber.end(SlowConsumer())
                            self._leave(subscriber)
            await self._pause(watcher, interval)

    async def _pause(self, watcher: Watcher, interval: float) -> None:
        """Until the next read: the interval, or a wake-up, whichever comes first."""
        sleeping = asyncio.ensure_future(self._sleep(interval))
        waking = asyncio.ensure_future(watcher.wake.wait())
        try:
            await asyncio.wait((sleeping, waking), return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeping.cancel()
            waking.cancel()
