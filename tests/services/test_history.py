"""Balance history and runway: fresh balances kept in the journal's database (SQLite and
PostgreSQL, for real), the last read of each bucket whatever the polling rate, the replicas
and the order they write in, retention, `Balance.history` downsampled server-side, and
`Balance.runway` from the burn rate up to now with top-ups left out."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
import pytest

from gateway.config.settings import HistorySettings
from gateway.domain import (
    AccountBalance,
    AccountInfo,
    Asset,
    AssetKind,
    Balance,
    Capability,
    Money,
    ProviderKind,
    Thresholds,
)
from gateway.errors import ConfigError
from gateway.services.history import (
    BATCH,
    HistoryRecorder,
    Point,
    SqlHistory,
    downsampled,
    runway,
)
from gateway.services.journal import open_journal
from gateway.simulator import Simulator
from tests.helpers import (
    FakeClock,
    GatewayClient,
    Ticker,
    demo_settings,
    no_sleep,
    ourvoice_fake,
    parse_settings,
    running_gateway,
    with_section,
)
from tests.server.test_admission import until

SN = "ourvoice-sn:credit:XOF"


def xof(amount: str | int) -> Money:
    return Money(Decimal(amount), "XOF")


def balance(available: str | int, balance_id: str = "a:main", **extra: Any) -> Balance:
    asset = Asset("XOF", "XOF", AssetKind.CASH)
    return Balance(balance_id, asset, xof(available), xof(available), **extra)


@pytest.fixture
async def history(journal_url: str) -> AsyncIterator[SqlHistory]:
    url = journal_url
    journal = open_journal(url)
    clock = FakeClock(1_800_000_000.0)
    yield SqlHistory(journal.database, every_seconds=60, retention_days=1, clock=clock)
    await journal.database.run("DELETE FROM balance_points")  # this run's own schema/file
    await journal.close()


async def test_the_last_read_of_each_bucket_whatever_writes_it(history: SqlHistory) -> None:
    key = f"a:{uuid.uuid4().hex}"
    start = 1_800_000_000.0  # a bucket boundary (a multiple of 60)
    for second, amount in ((0, 100), (10, 90), (59, 80), (60, 70), (130, 60)):
        await history.record("a", (balance(amount, key),), start + second)
    await history.record("a", (balance(999, key),), start + 5)  # another replica, late
    points = await history.points(key, start, start + 200)
    assert [(p.at.timestamp() - start, p.available.amount) for p in points] == [
        (59.0, Decimal(80)),
        (60.0, Decimal(70)),
        (130.0, Decimal(60)),
    ]
    assert points[0].available == xof(80) and points[0].at.tzinfo is UTC
    assert await history.points(key, start + 61, start + 200) == points[2:]


async def test_reads_written_together_keep_the_last_read_of_each_bucket(
    history: SqlHistory,
) -> None:
    """What queued while the writer was busy is written in one statement: the same
    points as read by read (the bucket's latest read, in any order; a later one already
    stored wins), for several balances and accounts at once."""
    key, other = f"a:{uuid.uuid4().hex}", f"b:{uuid.uuid4().hex}"
    start = 1_800_000_000.0
    await history.record("a", (balance(999, key),), start + 50)  # stored before: later
    await history.record_reads(
        [
            ("a", (balance(100, key),), start + 10),
            ("b", (balance(7, other),), start + 20),
            ("a", (balance(90, key),), start + 40),  # earlier than the stored one
            ("a", (balance(80, key),), start + 70),  # the next bucket
            ("a", (balance(75, key),), start + 65),  # earlier in that bucket, after
            ("b", (balance(6, other),), start + 30),
        ]
    )
    points = await history.points(key, start, start + 200)
    assert [(p.at.timestamp() - start, p.available.amount) for p in points] == [
        (50.0, Decimal(999)),
        (70.0, Decimal(80)),
    ]
    assert [p.available.amount for p in await history.points(other, start, start + 200)] == [
        Decimal(6)
    ]


async def test_a_read_not_yet_written_stands_as_its_buckets_point(history: SqlHistory) -> None:
    """Between a fresh read and its write, this process answers as if it were written: a
    dip the read replaced in its bucket is no burn — not in an answer computed meanwhile
    (one the response cache then keeps), nor once written."""
    key = f"a:{uuid.uuid4().hex}"
    start = 1_800_000_000.0  # a bucket boundary
    await history.record("a", (balance(1000, key),), start - 7200)
    await history.record("a", (balance(400, key),), start + 5)  # a dip, written
    recorder = HistoryRecorder(history, history.clock, no_sleep)
    info = AccountInfo("a", ProviderKind("ourvoice"), "A", (Capability.BALANCE,))
    read_at = datetime.fromtimestamp(start + 20, UTC)  # the same bucket, later: it replaces
    recorder.note(AccountBalance(info, (balance(1000, key),), read_at))
    now = start + 30
    since = now - 7 * 86400

    async def seen() -> list[tuple[float, Decimal]]:
        points = await history.window(key, since, now)
        assert runway(points, balance(1000, key), now) is None  # nothing fell
        return [(p.at.timestamp() - start, p.available.amount) for p in points]

    expected = [(-7200.0, Decimal(1000)), (20.0, Decimal(1000))]
    assert await seen() == expected  # queued, not written
    assert [p.available.amount for p in await history.points(key, start, now)] == [1000]
    writer = asyncio.ensure_future(recorder.run())
    await recorder.flush()
    writer.cancel()
    assert await seen() == expected  # written: the same
    await history.record("a", (balance(300, key),), start + 25)  # another replica, later
    earlier = datetime.fromtimestamp(start + 22, UTC)  # queued here, replaced there
    recorder.note(AccountBalance(info, (balance(1000, key),), earlier))
    points = await history.points(key, start, now)
    assert [p.available.amount for p in points] == [300]


class CountedStatements:
    """The journal's database, counting the inserts into the history it has run."""

    def __init__(self, database: Any) -> None:
        self.database = database
        self.inserts = 0

    async def run(self, sql: str, args: Any = ()) -> Any:
        done = await self.database.run(sql, args)
        self.inserts += sql.startswith("INSERT INTO balance_points")
        return done


class GatedInserts(CountedStatements):
    """… each insert into the history waiting for the test's permit."""

    def __init__(self, database: Any) -> None:
        super().__init__(database)
        self.permits = asyncio.Semaphore(0)
        self.waiting = 0

    async def run(self, sql: str, args: Any = ()) -> Any:
        if sql.startswith("INSERT INTO balance_points"):
            self.waiting += 1
            await self.permits.acquire()
            self.waiting -= 1
        return await super().run(sql, args)


@contextlib.asynccontextmanager
async def resting_writer(
    journal_url: str, sleep: Any = None, counted: Any = None
) -> AsyncIterator[tuple[Any, ...]]:
    """A history writer whose rests end only when the test ticks (or a batch waits, or a
    flush is asked for): (history, its counted database, the recorder, the rest, a way
    to land a read)."""
    journal = open_journal(journal_url)
    database = (counted or CountedStatements)(journal.database)
    clock, rest = FakeClock(1_800_000_000.0), Ticker()
    history = SqlHistory(database, every_seconds=60, retention_days=1, clock=clock)  # type: ignore[arg-type]
    recorder = HistoryRecorder(history, clock, sleep or rest.sleep)
    run = uuid.uuid4().hex
    landed: list[str] = []

    def land(amount: int) -> str:
        key = f"a{len(landed)}:{run}"
        info = AccountInfo(f"a{len(landed)}", ProviderKind("ourvoice"), "A", (Capability.BALANCE,))
        read_at = datetime.fromtimestamp(clock(), UTC)
        recorder.note(AccountBalance(info, (balance(amount, key),), read_at))
        landed.append(key)
        return key

    writer = asyncio.ensure_future(recorder.run())
    try:
        yield history, database, recorder, rest, land
    finally:
        writer.cancel()
        for key in landed:
            await journal.database.run("DELETE FROM balance_points WHERE balance = ?", (key,))
        await journal.close()


async def written(recorder: HistoryRecorder) -> None:
    async with asyncio.timeout(30):  # a bound on the test, not a timing assertion
        await recorder.flush()


async def test_reads_that_land_while_the_writer_rests_share_one_statement(
    journal_url: str,
) -> None:
    """A dashboard's accounts answer milliseconds apart: the first read is written at once,
    the others — landing while the writer rests after it — in its next statement, not one
    statement each; and all of them are there."""
    async with resting_writer(journal_url) as (history, database, _, rest, land):
        keys = [land(100)]
        await until(lambda: rest.waiting == 1)  # written, and resting
        assert database.inserts == 1
        for amount in (101, 102, 103):
            keys.append(land(amount))
            for _ in range(10):
                await asyncio.sleep(0)
        assert database.inserts == 1  # none written alone
        rest.tick()
        await until(lambda: database.inserts == 2)
        for i, key in enumerate(keys):
            (point,) = await history.points(key, 0, history.clock() + 1)
            assert point.available == xof(100 + i)


async def test_a_statements_worth_of_reads_ends_the_rest_and_none_waits_behind_a_rest(
    journal_url: str,
) -> None:
    """Reads arriving faster than a rest lets one statement carry: once `BATCH` of them
    wait the writer writes them without waiting out its rest, and goes on statement after
    statement while a full one waits — the rest never caps the rate, nothing is dropped."""
    async with resting_writer(journal_url) as (history, database, _, rest, land):
        keys = [land(0)]
        await until(lambda: rest.waiting == 1)  # written, and resting (never ticked)
        keys += [land(i) for i in range(1, BATCH)]  # one short of a statement's worth
        for _ in range(10):
            await asyncio.sleep(0)
        assert database.inserts == 1  # still resting
        keys += [land(i) for i in range(BATCH, 3 * BATCH + 1)]
        await until(lambda: database.inserts == 4)  # three full statements, no tick
        for i, key in enumerate(keys):
            (point,) = await history.points(key, 0, history.clock() + 1)
            assert point.available == xof(i)


async def test_a_statements_worth_landed_as_the_rest_begins_ends_it(journal_url: str) -> None:
    """The reads that land in the very turn the writer starts resting — before it waits
    for them — end the rest as well as those landing after."""
    lands: list[Any] = []

    async def rest_as_reads_land(seconds: float) -> None:
        if len(lands) == 1:  # the first rest only
            lands.append([lands[0](i) for i in range(1, BATCH + 1)])
        await asyncio.Event().wait()  # never ends: only the reads may end the rest

    async with resting_writer(journal_url, rest_as_reads_land) as (history, database, *_, land):
        lands.append(land)
        land(0)
        await until(lambda: database.inserts == 2)
        for i, key in enumerate(lands[1], start=1):
            (point,) = await history.points(key, 0, history.clock() + 1)
            assert point.available == xof(i)


async def test_reads_queued_while_a_flush_waits_are_written_without_a_rest(
    journal_url: str,
) -> None:
    """A flush asked for while a statement is being written, with another read queued
    behind it: the writer goes on to that read instead of resting first."""
    async with resting_writer(journal_url, counted=GatedInserts) as (history, database, *more):
        recorder, _, land = more
        land(1)
        await until(lambda: database.waiting == 1)  # its insert held
        flushing = asyncio.ensure_future(written(recorder))
        key = land(2)  # queued behind it, while the flush waits
        for _ in range(2):
            database.permits.release()
        await flushing
        assert database.inserts == 2
        (point,) = await history.points(key, 0, history.clock() + 1)
        assert point.available == xof(2)


async def test_a_flush_does_not_wait_out_a_rest(journal_url: str) -> None:
    """What a stopping process flushes is written at once, not after the writer's rest."""
    async with resting_writer(journal_url) as (history, database, recorder, rest, land):
        land(1)
        await until(lambda: rest.waiting == 1)  # written, and resting (never ticked)
        key = land(2)
        await written(recorder)
        assert database.inserts == 2
        (point,) = await history.points(key, 0, history.clock() + 1)
        assert point.available == xof(2)


async def test_a_written_read_stops_standing_in_and_a_later_buckets_read_still_does(
    journal_url: str,
) -> None:
    """A read written is no longer this process's unwritten read of its bucket (a pruned
    point does not come back from memory), while a read of the next bucket, queued
    meanwhile, still stands in for its own until it is written."""
    journal = open_journal(journal_url)
    database = GatedInserts(journal.database)
    start = 1_800_000_000.0  # a bucket boundary (a multiple of 60)
    clock = FakeClock(start)
    history = SqlHistory(database, every_seconds=60, retention_days=1, clock=clock)  # type: ignore[arg-type]
    recorder = HistoryRecorder(history, clock, no_sleep)
    key = f"a:{uuid.uuid4().hex}"
    info = AccountInfo("a", ProviderKind("ourvoice"), "A", (Capability.BALANCE,))

    def land(second: int, amount: int) -> None:
        read_at = datetime.fromtimestamp(start + second, UTC)
        recorder.note(AccountBalance(info, (balance(amount, key),), read_at))

    writer = asyncio.ensure_future(recorder.run())
    try:
        land(50, 300)
        await until(lambda: database.waiting == 1)  # its insert held
        land(65, 900)  # the next bucket, queued while the first is being written
        database.permits.release()
        await until(lambda: database.inserts == 1 and database.waiting == 1)
        points = await history.points(key, start, start + 100)
        assert [(p.at.timestamp() - start, p.available.amount) for p in points] == [
            (50.0, Decimal(300)),  # written
            (65.0, Decimal(900)),  # not yet: it stands in
        ]
        await history.prune(start + 10 * 86400)  # the written point goes
        points = await history.points(key, start, start + 100)
        assert [(p.at.timestamp() - start, p.available.amount) for p in points] == [
            (65.0, Decimal(900))
        ]
        database.permits.release()
        await written(recorder)
    finally:
        writer.cancel()
        await journal.database.run("DELETE FROM balance_points WHERE balance = ?", (key,))
        await journal.close()


async def test_an_earlier_buckets_unwritten_read_is_not_hidden_by_a_later_one(
    history: SqlHistory,
) -> None:
    """Two unwritten reads of one balance in two buckets: each stands as its bucket's
    point — the earlier one is not hidden (nor the value it replaced shown instead)."""
    key = f"a:{uuid.uuid4().hex}"
    start = 1_800_000_000.0  # a bucket boundary (a multiple of 60)
    await history.record("a", (balance(1000, key),), start + 1)  # written
    for second, amount in ((50, 300), (65, 900)):  # queued, not yet written
        history.expect(("a", (balance(amount, key),), start + second))
    points = await history.points(key, start, start + 100)
    assert [(p.at.timestamp() - start, p.available.amount) for p in points] == [
        (50.0, Decimal(300)),
        (65.0, Decimal(900)),
    ]


class FailingRead(CountedStatements):
    """… whose first read of the history fails (the database went away for a moment)."""

    def __init__(self, database: Any) -> None:
        super().__init__(database)
        self.failed = False

    async def run(self, sql: str, args: Any = ()) -> Any:
        if sql.startswith("SELECT") and not self.failed:
            self.failed = True
            raise ConnectionError("the database went away")
        return await super().run(sql, args)


async def test_a_read_whose_write_failed_does_not_stand_in_for_ever(journal_url: str) -> None:
    """The demo makes up a past before a balance's first write (a read of the history):
    when that fails, the read is no longer this process's unwritten point either — it is
    not shown in place of what the database holds."""
    journal = open_journal(journal_url)
    start = 1_800_000_000.0
    key = f"a:{uuid.uuid4().hex}"
    history = SqlHistory(
        FailingRead(journal.database),  # type: ignore[arg-type]
        every_seconds=60,
        retention_days=1,
        clock=FakeClock(start),
        demo_past_days=7,
    )
    read = ("a", (balance(5, key),), start + 50)
    history.expect(read)
    try:
        with pytest.raises(ConnectionError):
            await history.record_reads([read])
        assert await history.points(key, start, start + 100) == []
    finally:
        await journal.close()


async def test_rows_past_the_retention_are_deleted(history: SqlHistory) -> None:
    key = f"a:{uuid.uuid4().hex}"
    now = 1_800_000_000.0
    await history.record("a", (balance(1, key),), now - 2 * 86400)
    await history.record("a", (balance(2, key),), now - 3600)
    assert await history.prune(now) >= 1
    (kept,) = await history.points(key, 0, now)
    assert kept.available == xof(2)


def test_downsampling_keeps_the_last_point_of_each_bucket() -> None:
    def point(second: int, amount: int) -> Point:
        return Point(datetime.fromtimestamp(second, UTC), xof(amount), xof(amount))

    points = [point(0, 5), point(30, 4), point(59, 3), point(61, 2), point(200, 1)]
    assert downsampled(points, 0, 60) == [point(59, 3), point(61, 2), point(200, 1)]


def test_the_runway_counts_falls_up_to_now_not_top_ups() -> None:
    hour = 3600

    def point(hours: float, amount: int) -> Point:
        return Point(datetime.fromtimestamp(hours * hour, UTC), xof(amount), xof(amount))

    # 4,000 fell between hour 0 and now, hour 5 (800 an hour); the top-up of 5,000 at hour 3
    # is not burn; the last 1,000 fell between the last point and the amount now
    points = [point(0, 10_000), point(2, 8_000), point(3, 13_000), point(4, 12_000)]
    now = 5 * hour
    found = runway(points, balance(11_000, thresholds=Thresholds(None, xof(1_000))), now)
    assert found is not None
    assert found.burn_per_day == xof("19200.00")
    assert found.zero_at == datetime.fromtimestamp(now + 11_000 / 800 * hour, UTC)
    assert found.critical_at == datetime.fromtimestamp(now + 10_000 / 800 * hour, UTC)
    assert found.since == points[0].at
    # quiet since: the same falls over 10 hours up to now burn half as fast
    later = runway(points, balance(11_000), 10 * hour)
    assert later is not None and later.burn_per_day == xof("9600.00")
    # a point before the 7-day window stands at its start
    old = [point(-24 * 30, 20_000), point(24, 10_000)]
    windowed = runway(old, balance(10_000), 7 * 24 * hour)
    assert windowed is not None and windowed.since == datetime.fromtimestamp(0, UTC)
    assert windowed.burn_per_day == xof("1428.57")  # 10,000 over the 7 days
    rising = [point(0, 1_000), point(2, 5_000)]
    assert runway(rising, balance(5_000), now) is None  # nothing fell
    assert runway([], balance(10_000), now) is None  # no history: no span
    minute = [point(0, 5), point(1 / 60, 4)]
    assert runway(minute, balance(4), 120) is None  # two minutes say nothing of a rate
    trickle = [
        point(0, 10**15),
        Point(
            datetime.fromtimestamp(7 * 86400, UTC),
            xof("999999999999999.99"),
            xof("999999999999999.99"),
        ),
    ]
    assert runway(trickle, balance("999999999999999.99"), 7 * 86400) is None  # ten years


async def test_history_and_runway_over_graphql(
    sim: Simulator, clock: FakeClock, gw: GatewayClient
) -> None:
    query = """query($since: DateTime) { balances(accountIds: ["ourvoice-sn"]) { results {
      ... on AccountBalance { balances { id
        history(since: $since, every: 3600) { at available { amount } }
        runway { burnPerDay { amount currency } zeroAt criticalAt } } } } } }"""
    start = clock()
    recorder = gw.app.state.recorder
    # Every 30 minutes for 6 hours: 500 XOF of SMS sent each time, a top-up at hour 3.
    amount = Decimal(90_000)
    for step in range(13):
        if step == 6:
            amount += 40_000  # a top-up: a rise, not burn
        ourvoice_fake(sim).balances["ourvoice-sn"] = amount
        await gw.query('{ balances(accountIds: ["ourvoice-sn"]) { complete } }')
        await gw.query('{ balances(accountIds: ["ourvoice-sn"]) { complete } }')  # cached
        await recorder.flush()
        amount -= 500
        clock.advance(1800)
    since = datetime.fromtimestamp(start, UTC).isoformat().replace("+00:00", "Z")
    answer = await gw.query(query, {"since": since})
    refused = await gw.post(query.replace("every: 3600", "every: 1"), {"since": since})
    (result,) = answer["data"]["balances"]["results"]
    (sn,) = result["balances"]
    assert sn["id"] == SN
    points = sn["history"]
    # one point per hour (the last of each), the top-up a rise
    assert [p["available"]["amount"] for p in points] == [
        "89500",
        "88500",
        "87500",
        "126500",
        "125500",
        "124500",
        "124000",
    ]
    # 11 sends of 500 from the first read to now, 6.5 hours later: 5,500 / 6.5 h = 20,307.69
    # a day; the top-up not counted
    assert sn["runway"]["burnPerDay"] == {"amount": "20307.69", "currency": "XOF"}
    hours = (datetime.fromisoformat(sn["runway"]["zeroAt"]).timestamp() - clock()) / 3600
    assert round(hours, 2) == round(124_000 / (5_500 / 6.5), 2)
    hours = (datetime.fromisoformat(sn["runway"]["criticalAt"]).timestamp() - clock()) / 3600
    assert round(hours, 2) == round((124_000 - 20_000) / (5_500 / 6.5), 2)
    assert refused.json()["errors"][0]["extensions"]["code"] == "VALIDATION"


async def test_every_fresh_read_is_kept_stale_answers_are_not(
    sim: Simulator, sim_transport: httpx.AsyncBaseTransport, clock: FakeClock
) -> None:
    settings = dataclasses.replace(demo_settings(), history=HistorySettings(every_seconds=60))
    async with running_gateway(settings, sim_transport, clock) as gw:
        recorder = gw.app.state.recorder
        history = gw.app.state.service.history
        for _ in range(5):  # unchanged, fresh each time, a bucket each: five rows
            await gw.query('{ balances(accountIds: ["ourvoice-sn"]) { complete } }')
            await gw.query('{ balances(accountIds: ["ourvoice-sn"]) { complete } }')  # cached
            clock.advance(120)
        await recorder.flush()
        sim.state.set_faults("ourvoice-sn", status=503)
        clock.advance(20)  # stale, served from the cache: not history
        await gw.query('{ balances(accountIds: ["ourvoice-sn"]) { complete } }')
        await recorder.flush()
        points = await history.points(SN, 0, clock() + 1)
    assert len(points) == 5


async def test_the_first_releases_history_is_moved_in_and_stays_readable(
    journal_url: str,
) -> None:
    """Rows the first release kept (`balance_history`, one per bucket number) are moved into
    `balance_points` when the journal opens, and read by their time as before."""
    key = f"a:{uuid.uuid4().hex}"
    first = open_journal(journal_url)
    await first.database.run(
        "INSERT INTO balance_history VALUES (?, ?, 'a', ?, 'XOF', '5', '4')",
        (key, 30_000_000, 1_800_000_000.0),
    )
    await first.close()
    reopened = open_journal(journal_url)
    history = SqlHistory(reopened.database, 300, 90, FakeClock(1_800_000_000.0))
    await history.record("a", (balance(3, key),), 1_800_000_100.0)
    points = await history.points(key, 0, 2_000_000_000)
    legacy, _ = await reopened.database.run("SELECT COUNT(*) FROM balance_history")
    await reopened.database.run("DELETE FROM balance_points WHERE balance = ?", (key,))
    await reopened.close()
    assert [(p.at.timestamp(), p.available.amount) for p in points] == [
        (1_800_000_000.0, Decimal(4)),
        (1_800_000_100.0, Decimal(3)),
    ]
    assert legacy == [(0,)]


async def test_a_graceful_stop_writes_what_is_queued(
    sim: Simulator, sim_transport: httpx.AsyncBaseTransport, clock: FakeClock
) -> None:
    settings = demo_settings()
    async with running_gateway(settings, sim_transport, clock) as gw:
        await gw.query('{ balances(accountIds: ["ourvoice-sn"]) { complete } }')
        # no flush: the app's shutdown writes the queued read
    journal = open_journal(settings.idempotency.url)
    history = SqlHistory(journal.database, 60, 90, clock)
    points = await history.points(SN, 0, clock() + 1)
    await journal.close()
    assert [p.available.amount for p in points] == [Decimal(50_000)]


async def test_now_is_never_before_a_read_of_this_very_instant(history: SqlHistory) -> None:
    """A read's time is kept to the microsecond (a datetime's timestamp), which can round
    up past the clock's float: `now` rounds the same way, so that read is in the window."""
    rounds_up = 1_796_480_965.2573156
    assert datetime.fromtimestamp(rounds_up, UTC).timestamp() > rounds_up  # the trap
    for instant in (rounds_up, 1_796_480_965.5586772, 1_717_461_806.0000005):
        assert isinstance(history.clock, FakeClock)
        history.clock.now = instant
        key = f"a:{uuid.uuid4().hex}"
        read_at = datetime.fromtimestamp(instant, UTC).timestamp()  # as the cache says it
        await history.record("a", (balance(7, key),), read_at)
        assert len(await history.points(key, instant - 60, history.now())) == 1


async def test_the_demo_starts_with_a_made_up_week_marked_synthetic(
    sim: Simulator, sim_transport: httpx.AsyncBaseTransport, clock: FakeClock
) -> None:
    """`[history] demo_past_days` (development only): a balance read for the first time gets
    an hourly past falling 2 % of today's amount a day, every point marked synthetic, so
    the history line and the runway show at once; a real read is never synthetic."""
    settings = with_section(demo_settings(), "history", demo_past_days=7)
    query = """{ balances(accountIds: ["ourvoice-sn"]) { results { ... on AccountBalance {
      balances { history(every: 3600) { at available { amount } synthetic }
                 runway { burnPerDay { amount } } } } } } }"""
    async with running_gateway(settings, sim_transport, clock) as gw:
        await gw.query('{ balances(accountIds: ["ourvoice-sn"]) { complete } }')
        await gw.app.state.recorder.flush()
        clock.advance(60)
        answer = await gw.query(query)
    (result,) = answer["data"]["balances"]["results"]
    (balance,) = result["balances"]
    made_up = [p for p in balance["history"] if p["synthetic"]]
    real = [p for p in balance["history"] if not p["synthetic"]]
    assert len(made_up) >= 6 * 24 and made_up[-1]["available"]["amount"] == "50041.67"
    assert [p["available"]["amount"] for p in real] == ["50000"]
    assert balance["runway"]["burnPerDay"]["amount"] == "1000.00"  # 2 % of 50,000 a day


def test_a_made_up_past_is_refused_outside_development() -> None:
    account = {"provider": "ourvoice", "base_url": "https://x", "api_key": "env:K"}
    data = {"accounts": {"ov": account}, "history": {"demo_past_days": 7}}
    with pytest.raises(ConfigError) as raised:
        parse_settings(data, {"K": "k" * 12})
    assert "history.demo_past_days" in {p.location for p in raised.value.problems}
