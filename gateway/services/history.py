"""Balance history and runway, kept in the journal's database (SQLite by default, the
shared PostgreSQL for replicas).

Writes are bounded whatever the polling rate and the number of replicas: a balance read
fresh from its provider is recorded only when it differs from the last one recorded (in
this process), and the table holds at most one row per balance per bucket of
`every_seconds` (`INSERT … ON CONFLICT DO NOTHING` on `(balance, bucket)`). Rows older than
`retention_days` are deleted once an hour. Recording never slows an answer: the reads are
queued (at most `QUEUE_SIZE`; past that, points are dropped with a warning) and one task
writes them.

Runway: the burn rate is the sum of the falls of the available amount between recorded
points over the last `RUNWAY_DAYS` (a rise — a top-up — is not burn and is left out),
divided by the time they span; the balance runs out (or reaches its critical level) after
its current available amount divided by that rate. No runway when nothing fell, the
points span less than an hour, or the balance would last more than ten years.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from itertools import pairwise

from gateway.domain import AccountBalance, AccountBalanceResult, Balance, Money
from gateway.services.journal import Database

log = logging.getLogger("gateway.services.history")
QUEUE_SIZE = 1000
PRUNE_EVERY_SECONDS = 3600.0
RUNWAY_DAYS = 7
MIN_RUNWAY_SPAN_SECONDS = 3600.0
MAX_POINTS = 1000
MAX_RUNWAY_SECONDS = 10 * 365 * 86400


@dataclass(frozen=True)
class Point:
    at: datetime
    total: Money
    available: Money


@dataclass(frozen=True)
class Runway:
    burn_per_day: Money  # what the available amount fell by per day, rises left out
    zero_at: datetime  # when, at that rate, it reaches zero
    critical_at: datetime | None  # … and its critical level (if it has one, above it)
    since: datetime  # the first point the rate is based on


def runway(points: list[Point], balance: Balance, now: float) -> Runway | None:
    """When `balance` runs out at the burn rate of `points` (see the module doc)."""
    if len(points) < 2:
        return None
    span = (points[-1].at - points[0].at).total_seconds()
    if span < MIN_RUNWAY_SPAN_SECONDS:
        return None
    falls = (a.available.amount - b.available.amount for a, b in pairwise(points))
    fell = sum((fall for fall in falls if fall > 0), Decimal(0))  # a rise is a top-up
    if fell <= 0:
        return None
    per_second = fell / Decimal(span)
    available = balance.available.amount
    if available / per_second > MAX_RUNWAY_SECONDS:
        return None  # a trickle: no date worth telling (and none a calendar can hold)
    start = datetime.fromtimestamp(now, UTC)
    currency = balance.available.currency
    burn = Money((per_second * 86400).quantize(Decimal("0.01")), currency)

    def at(amount: Decimal) -> datetime:
        seconds = max(Decimal(0), amount / per_second)
        return datetime.fromtimestamp(now + float(seconds), UTC)

    critical = balance.thresholds.critical if balance.thresholds is not None else None
    critical_at = None
    if critical is not None and critical.currency == currency:
        critical_at = at(available - critical.amount) if available > critical.amount else start
    return Runway(burn, at(available), critical_at, points[0].at)


def downsampled(points: list[Point], since: float, every: float) -> list[Point]:
    """The last point of each `every`-second bucket from `since`, in time order."""
    last: dict[int, Point] = {}
    for point in points:
        last[int((point.at.timestamp() - since) // every)] = point
    return [last[k] for k in sorted(last)]


class SqlHistory:
    def __init__(
        self,
        db: Database,
        every_seconds: int,
        retention_days: int,
        clock: Callable[[], float],
    ) -> None:
        self._db = db
        self.clock = clock
        self.every_seconds = every_seconds
        self.retention_seconds = retention_days * 86400.0

    async def record(self, account: str, balances: tuple[Balance, ...], at: float) -> None:
        bucket = int(at // self.every_seconds)
        for balance in balances:
            await self._db.run(
                "INSERT INTO balance_history "
                "(balance, bucket, account, at, currency, total, available) "
                "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                (
                    balance.id,
                    bucket,
                    account,
                    at,
                    balance.available.currency,
                    format(balance.total.amount, "f"),
                    format(balance.available.amount, "f"),
                ),
            )

    async def points(self, balance: str, since: float, until: float) -> list[Point]:
        rows, _ = await self._db.run(
            "SELECT at, currency, total, available FROM balance_history "
            "WHERE balance = ? AND bucket >= ? AND bucket <= ? AND at >= ? AND at <= ? "
            "ORDER BY bucket",
            (
                balance,
                int(since // self.every_seconds),
                int(until // self.every_seconds),
                since,
                until,
            ),
        )
        return [
            Point(
                datetime.fromtimestamp(float(at), UTC),
                Money(Decimal(total), currency),
                Money(Decimal(available), currency),
            )
            for at, currency, total, available in rows
        ]

    async def prune(self, now: float) -> int:
        _, deleted = await self._db.run(
            "DELETE FROM balance_history WHERE at < ?", (now - self.retention_seconds,)
        )
        return deleted


class HistoryRecorder:
    """Hears every answer the balance service reads (`note`) and queues the fresh ones that
    changed; `run` writes them, and prunes once an hour."""

    def __init__(self, history: SqlHistory, clock: Callable[[], float]) -> None:
        self.history = history
        self.clock = clock
        self._last: dict[str, tuple[Money, Money]] = {}
        self._fetched: dict[str, datetime] = {}  # per account: the read last looked at
        self._queue: asyncio.Queue[tuple[str, tuple[Balance, ...], float]] = asyncio.Queue(
            QUEUE_SIZE
        )
        self._warned = False

    def note(self, result: AccountBalanceResult) -> None:
        if not isinstance(result, AccountBalance) or result.stale:
            return  # only what the provider has just said is history
        account = result.account.id
        if self._fetched.get(account) == result.fetched_at:
            return  # the same read again (a cache hit): nothing new, no comparing
        self._fetched[account] = result.fetched_at
        changed = tuple(
            b for b in result.balances if self._last.get(b.id) != (b.total, b.available)
        )
        if not changed:
            return
        try:
            self._queue.put_nowait((account, changed, result.fetched_at.timestamp()))
        except asyncio.QueueFull:
            if not self._warned:
                log.warning("balance history is behind: points dropped")
                self._warned = True
            del self._fetched[account]  # looked at again when next read
            return
        for balance in changed:
            self._last[balance.id] = (balance.total, balance.available)

    async def run(self) -> None:
        """Write queued points until cancelled (the app's lifespan runs it)."""
        pruned = 0.0
        while True:
            account, balances, at = await self._queue.get()
            try:
                await self.history.record(account, balances, at)
                if self.clock() - pruned >= PRUNE_EVERY_SECONDS:
                    pruned = self.clock()
                    await self.history.prune(pruned)
            except Exception:
                log.exception("balance history: a write failed")
                self._fetched.pop(account, None)  # looked at again when next read
                for balance in balances:
                    self._last.pop(balance.id, None)
            finally:
                self._queue.task_done()

    async def flush(self) -> None:
        """Until everything queued so far is written."""
        await self._queue.join()
