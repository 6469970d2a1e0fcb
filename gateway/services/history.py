"""Balance history and runway, kept in the journal's database (SQLite by default, the
shared PostgreSQL for replicas).

History: for each balance and each bucket of `every_seconds` that holds a fresh read, one
row — the last read of the bucket (the greatest `at`). Every fresh read is written as an
upsert that keeps the later of two reads of one bucket, so neither the order in which
replicas write nor a second change inside one bucket can lose a value, and rows stay bounded
by buckets whatever the polling rate or the number of replicas. A bucket is the setting and
its first second, so buckets of two settings never meet; rows are read by their time only,
so a change of `every_seconds` hides none of them. Rows older than `retention_days` are
deleted once an hour. Recording never slows an answer: each fresh read is queued once
(`fresh_reads.py`, at most `QUEUE_SIZE`) and one task writes them, what queued since its
last write in one statement, resting `WRITE_EVERY_SECONDS` after a write that caught up
unless a statement's worth (`BATCH`) is waiting. Until its read is written, a process
reads its own history as if it were (`unwritten`): a runway answered between a read and
its write, and kept in the response cache, counts that read as its bucket's point — never
a value the read has already replaced in that bucket.

Runway (docs/dashboard.md's definition, "Exactly what is kept"): over the window of
`RUNWAY_DAYS` up to now, the falls of the available amount between points — the last point
before the window standing at its start, the current value held until now; a rise (a
top-up) is not burn — divided by the time from the window's first point to now; the
balance runs out (or reaches its critical level) after its available amount divided by
that rate. No runway when nothing fell, that span is under an hour, or the balance would
last more than ten years.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal
from itertools import pairwise
from typing import Any

from gateway.domain import AccountBalanceResult, Balance, Money
from gateway.services.fresh_reads import FreshReads, Read
from gateway.services.journal import Database

log = logging.getLogger("gateway.services.history")
QUEUE_SIZE = 1000
BATCH = 64  # queued reads written in one statement (one round trip, one commit)
# After a write that left fewer than BATCH reads waiting, the writer rests this long, so
# the reads that land meanwhile (a dashboard's accounts answer a few milliseconds apart)
# go in its next statement, not one statement each. A read after a quiet spell is written
# at once, one inside a rest this much later; the rest ends as soon as BATCH reads wait,
# so it never holds more than a statement's worth nor caps the rate reads are written at.
WRITE_EVERY_SECONDS = 0.2
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
    synthetic: bool = False  # the demo's made-up past ([history] demo_past_days)


@dataclass(frozen=True)
class Runway:
    burn_per_day: Money  # what the available amount fell by per day, rises left out
    zero_at: datetime  # when, at that rate, it reaches zero
    critical_at: datetime | None  # … and its critical level (if it has one, above it)
    since: datetime  # the first point the rate is based on


def runway(points: list[Point], balance: Balance, now: float) -> Runway | None:
    """When `balance` runs out at the burn rate of the window ending `now`: `points` are
    the history from the last point at or before the window's start (see `SqlHistory.window`)
    up to now, in time order."""
    start = now - RUNWAY_DAYS * 86400
    series = [(max(p.at.timestamp(), start), p.available.amount) for p in points]
    available = balance.available.amount
    series.append((now, available))  # the current value, held until now
    span = now - series[0][0]
    if span < MIN_RUNWAY_SPAN_SECONDS:
        return None
    fell = sum((max(Decimal(0), a - b) for (_, a), (_, b) in pairwise(series)), Decimal(0))
    if fell <= 0:
        return None  # a rise is a top-up, not burn
    per_second = fell / Decimal(span)
    if available / per_second > MAX_RUNWAY_SECONDS:
        return None  # a trickle: no date worth telling (and none a calendar can hold)
    currency = balance.available.currency
    burn = Money((per_second * 86400).quantize(Decimal("0.01"), ROUND_HALF_EVEN), currency)

    def at(amount: Decimal) -> datetime:
        seconds = max(Decimal(0), amount / per_second)
        return datetime.fromtimestamp(now + float(seconds), UTC)

    critical = balance.thresholds.critical if balance.thresholds is not None else None
    critical_at = None
    if critical is not None and critical.currency == currency:
        critical_at = at(available - critical.amount)
    return Runway(burn, at(available), critical_at, datetime.fromtimestamp(series[0][0], UTC))


def downsampled(points: list[Point], since: float, every: float) -> list[Point]:
    """The last point of each `every`-second bucket from `since`, in time order."""
    last: dict[int, Point] = {}
    for point in points:
        last[int((point.at.timestamp() - since) // every)] = point
    return [last[k] for k in sorted(last)]


SYNTHETIC = -1  # `every_seconds` of the demo's made-up points
# A row of `balance_points`: balance, every_seconds, bucket, account, at, currency, total,
# available.
Row = tuple[str, int, int, str, float, str, Decimal, Decimal]
DEMO_BURN_PER_DAY = Decimal("0.02")  # the made-up past falls 2 % of today's amount a day


def amounts(balance: Balance) -> tuple[Decimal, Decimal]:
    return balance.total.amount, balance.available.amount


POINT_COLUMNS = "at, currency, total, available, every_seconds, bucket"


def _point(
    at: float, currency: str, total: str | Decimal, available: str | Decimal, every: int
) -> Point:
    return Point(
        datetime.fromtimestamp(float(at), UTC),
        Money(Decimal(total), currency),
        Money(Decimal(available), currency),
        synthetic=every == SYNTHETIC,
    )


def made_up_past(balance: Balance, at: float, days: int) -> list[tuple[float, Decimal, Decimal]]:
    """Hourly (time, total, available) for `days` before `at`, ending at the balance's
    amounts and falling `DEMO_BURN_PER_DAY` of them a day — plausible, and never real."""
    available, total = balance.available.amount, balance.total.amount
    places = available.as_tuple().exponent
    exponent = min(places, -2) if isinstance(places, int) else -2
    points = []
    for hours in range(days * 24, 0, -1):
        extra = (available * DEMO_BURN_PER_DAY * hours / 24).quantize(Decimal(1).scaleb(exponent))
        points.append((at - hours * 3600.0, total + extra, available + extra))
    return points


class SqlHistory:
    def __init__(
        self,
        db: Database,
        every_seconds: int,
        retention_days: int,
        clock: Callable[[], float],
        demo_past_days: int = 0,
    ) -> None:
        self._db = db
        self.clock = clock
        self.every_seconds = every_seconds
        self.retention_seconds = retention_days * 86400.0
        self.demo_past_days = demo_past_days
        # Per balance and bucket, its latest read queued and not yet written (`expect`,
        # `record_reads`): a later read in a new bucket never hides an earlier one's.
        self._unwritten: dict[str, dict[int, Row]] = {}

    def now(self) -> float:
        """The clock, to the microsecond, as a read's time is kept (a datetime's
        timestamp): a read made at this very instant is at or before it, never after."""
        return datetime.fromtimestamp(self.clock(), UTC).timestamp()

    async def record(self, account: str, balances: tuple[Balance, ...], at: float) -> None:
        """One fresh read of `account`: each balance becomes its bucket's point unless the
        bucket already holds a later read (one statement for all of them)."""
        await self.record_reads([(account, balances, at)])

    def expect(self, read: Read) -> None:
        """A read queued for writing: until it is written, this process's reads of the
        history see it (`_with_unwritten`)."""
        for row in self._rows(read):
            buckets = self._unwritten.setdefault(row[0], {})
            known = buckets.get(row[2])
            if known is None or row[4] > known[4]:
                buckets[row[2]] = row

    def _rows(self, read: Read) -> list[Row]:
        account, balances, at = read
        bucket = int(at - at % self.every_seconds)
        every = self.every_seconds
        return [
            (b.id, every, bucket, account, at, b.available.currency, *amounts(b)) for b in balances
        ]

    async def record_reads(self, reads: list[Read]) -> None:
        """Fresh reads, in one statement: each balance's latest read of a bucket among
        them becomes the bucket's point unless the bucket already holds a later one."""
        latest: dict[tuple[str, int], Row] = {}  # (balance, bucket) → its latest row
        for read in reads:
            for row in self._rows(read):
                known = latest.get((row[0], row[2]))
                if known is None or read[2] > known[4]:
                    latest[(row[0], row[2])] = row
        try:
            if self.demo_past_days:
                for account, balances, at in reads:
                    if balances:
                        await self.make_up_past(account, balances, at)
            await self._insert(list(latest.values()), keep_later=True)
        finally:  # written, or failed (logged): either way no longer waiting
            for balance, _, bucket, _, at, _, _, _ in latest.values():
                buckets = self._unwritten.get(balance, {})
                known = buckets.get(bucket)
                if known is not None and known[4] <= at:
                    del buckets[bucket]
                    if not buckets:
                        del self._unwritten[balance]

    async def make_up_past(self, account: str, balances: tuple[Balance, ...], at: float) -> None:
        """The demo only: a balance the history has never seen gets a made-up past (before
        its first read is written, or its history first asked for) — one statement."""
        for balance in balances:
            rows, _ = await self._db.run(
                "SELECT 1 FROM balance_points WHERE balance = ? LIMIT 1", (balance.id,)
            )
            if rows:
                continue
            currency = balance.available.currency
            past: list[Row] = [
                (balance.id, SYNTHETIC, int(when), account, when, currency, total, available)
                for when, total, available in made_up_past(balance, at, self.demo_past_days)
            ]
            await self._insert(past, keep_later=False)

    async def _insert(self, rows: list[Row], keep_later: bool) -> None:
        """Rows into `balance_points` in one statement: a bucket already held keeps the
        later read (`keep_later`), or what it holds."""
        if not rows:
            return
        values = ", ".join("(?, ?, ?, ?, ?, ?, ?, ?)" for _ in rows)
        args: list[object] = []
        for *key, total, available in rows:
            args += (*key, format(total, "f"), format(available, "f"))
        conflict = (
            "ON CONFLICT (balance, every_seconds, bucket) DO UPDATE SET at = excluded.at, "
            "account = excluded.account, currency = excluded.currency, "
            "total = excluded.total, available = excluded.available "
            "WHERE excluded.at > balance_points.at"
            if keep_later
            else "ON CONFLICT DO NOTHING"
        )
        await self._db.run(  # the SQL is built from constants; values go as parameters
            "INSERT INTO balance_points (balance, every_seconds, bucket, account, at, "  # noqa: S608
            f"currency, total, available) VALUES {values} {conflict}",
            args,
        )

    async def points(self, balance: str, since: float, until: float) -> list[Point]:
        """The points of `balance` with `since <= at <= until`, in time order."""
        rows, _ = await self._db.run(
            f"SELECT {POINT_COLUMNS} FROM balance_points "  # noqa: S608 (constants)
            "WHERE balance = ? AND at >= ? AND at <= ? ORDER BY at",
            (balance, since, until),
        )
        return self._with_unwritten(balance, rows, since, until)

    async def window(self, balance: str, since: float, until: float) -> list[Point]:
        """The last point at or before `since` (where the window starts from), then the
        points after it up to `until`: what a runway is measured on."""
        rows, _ = await self._db.run(
            f"SELECT {POINT_COLUMNS} FROM balance_points "  # noqa: S608 (constants)
            "WHERE balance = ? AND at <= ? ORDER BY at DESC LIMIT 1",
            (balance, since),
        )
        before = [_point(*row[:5]) for row in rows]
        rows, _ = await self._db.run(
            f"SELECT {POINT_COLUMNS} FROM balance_points "  # noqa: S608 (constants)
            "WHERE balance = ? AND at > ? AND at <= ? ORDER BY at",
            (balance, since, until),
        )
        return before + self._with_unwritten(balance, rows, since, until)

    def _with_unwritten(
        self, balance: str, rows: list[tuple[Any, ...]], since: float, until: float
    ) -> list[Point]:
        """Rows of `POINT_COLUMNS` as points, with this process's unwritten reads of the
        balance (those after `since`, up to `until`) standing as their buckets' points."""
        for unwritten in self._unwritten.get(balance, {}).values():
            _, every, bucket, _, at, currency, total, available = unwritten
            if not since < at <= until:
                continue
            same_bucket = [r for r in rows if (r[4], r[5]) == (every, bucket)]
            if any(float(r[0]) >= at for r in same_bucket):
                continue  # written already, or replaced
            rows = [r for r in rows if r not in same_bucket]
            rows.append((at, currency, total, available, every, bucket))
        return [_point(*row[:5]) for row in sorted(rows, key=lambda r: float(r[0]))]

    async def prune(self, now: float) -> int:
        _, deleted = await self._db.run(
            "DELETE FROM balance_points WHERE at < ?", (now - self.retention_seconds,)
        )
        return deleted


class HistoryRecorder:
    """Hears every answer the balance service reads (`note`: each fresh read once, see
    `fresh_reads.py`); `run` writes them — what queued since the last write, in one
    statement, resting `WRITE_EVERY_SECONDS` after one that caught up unless `BATCH` reads
    wait — and prunes once an hour."""

    def __init__(
        self,
        history: SqlHistory,
        clock: Callable[[], float],
        sleep: Callable[[float], Awaitable[Any]],
    ) -> None:
        self.history = history
        self.clock = clock
        self.sleep = sleep
        self.reads = FreshReads(QUEUE_SIZE, "balance history is behind: points dropped")
        self._wake = asyncio.Event()  # ends a rest: a statement's worth waits, or a flush
        self._flushes = 0  # flushes waiting: no rest meanwhile

    def note(self, result: AccountBalanceResult) -> None:
        queued = self.reads.note(result)
        if queued is not None:
            self.history.expect(queued)
            if self.reads.queued() >= BATCH:
                self._wake.set()

    async def run(self) -> None:
        """Write queued points until cancelled (the app's lifespan runs it)."""
        pruned = 0.0
        while True:
            reads = [await self.reads.get()]  # and every read queued meanwhile, at most BATCH
            while len(reads) < BATCH and (more := self.reads.get_nowait()) is not None:
                reads.append(more)
            try:
                await self.history.record_reads(reads)
                if self.clock() - pruned >= PRUNE_EVERY_SECONDS:
                    pruned = self.clock()
                    await self.history.prune(pruned)
            except Exception:
                log.exception("balance history: a write failed")
                for account, _, _ in reads:
                    self.reads.again(account)
            finally:
                for _ in reads:
                    self.reads.done()
            if self.reads.queued() < BATCH and not self._flushes:
                await self._rest()  # caught up: what lands meanwhile goes together

    async def _rest(self) -> None:
        """`WRITE_EVERY_SECONDS`, or until a statement's worth of reads waits, or until a
        flush is asked for (`_wake`)."""
        self._wake.clear()
        waits = [
            asyncio.ensure_future(self.sleep(WRITE_EVERY_SECONDS)),
            asyncio.ensure_future(self._wake.wait()),
        ]
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for wait in waits:
                wait.cancel()

    async def flush(self) -> None:
        """Until everything queued so far is written (the writer does not rest meanwhile:
        a process stopping does not wait out a rest)."""
        self._flushes += 1
        self._wake.set()
        try:
            await self.reads.join()
        finally:
            self._flushes -= 1
