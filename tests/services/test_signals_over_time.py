"""Seven things that went wrong with history, runway, levels and webhooks over time and
across replicas — each as an operator met it, through the real app, the simulator and an
injected clock (and, where replicas matter, two apps sharing one journal on SQLite and on
PostgreSQL). Each of these failed before the fix (see docs/dashboard.md, "Exactly what is
kept and when an event fires")."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
import pytest

from gateway.config.secret import Secret
from gateway.config.settings import HistorySettings, IdempotencySettings, Settings, WebhookSettings
from gateway.services.journal import open_journal
from gateway.simulator import Simulator
from tests.helpers import (
    FakeClock,
    GatewayClient,
    demo_settings,
    ourvoice_fake,
    running_gateway,
    serving,
)
from tests.webhook_receiver import SECRET, Receiver

SN = "ourvoice-sn:credit:XOF"
READ = '{ balances(accountIds: ["ourvoice-sn"]) { complete } }'
SIGNALS = """query($since: DateTime) { balances(accountIds: ["ourvoice-sn"]) { results {
  ... on AccountBalance { balances { id
    history(since: $since, every: 3600) { at available { amount } }
    runway { burnPerDay { amount } zeroAt } } } } } }"""
TABLES = ("balance_points", "balance_history", "balance_alerts", "webhook_outbox")


def iso(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat().replace("+00:00", "Z")


async def signals(gw: GatewayClient, since: float) -> dict[str, Any]:
    answer = await gw.query(SIGNALS, {"since": iso(since)})
    (result,) = answer["data"]["balances"]["results"]
    (balance,) = [b for b in result["balances"] if b["id"] == SN]
    found: dict[str, Any] = balance
    return found


async def read(gw: GatewayClient, sim: Simulator, amount: int | str | None = None) -> None:
    """The simulator's balance set (when given), then a fresh read, written down."""
    if amount is not None:
        ourvoice_fake(sim).balances["ourvoice-sn"] = Decimal(amount)
    await gw.query(READ)
    state = gw.app.state
    await state.recorder.flush()
    if state.notifier is not None:
        await state.notifier.flush()
        await state.notifier.deliver_due()


@pytest.fixture
async def shared_journal(journal_url: str) -> AsyncIterator[str]:
    """One journal two apps share; this run's own file or schema, emptied around the test
    (every test here reads the same demo balance id)."""
    journal = open_journal(journal_url)

    async def empty() -> None:
        for table in TABLES:
            if await has(journal, table):  # (the tables before the fix had other names)
                await journal.database.run(f"DELETE FROM {table}")

    await empty()
    yield journal_url
    await empty()
    await journal.close()


def with_webhook(settings: Settings, url: str) -> Settings:
    endpoint = WebhookSettings("ops", f"{url}/hooks", Secret(SECRET))
    return dataclasses.replace(settings, webhooks=(endpoint,))


async def test_1_runway_counts_the_quiet_time_since_the_last_change(
    sim: Simulator, clock: FakeClock, gw: GatewayClient
) -> None:
    """100,000 XOF spent in one hour, then unchanged for six days while polled hourly: about
    16,500 a day and weeks of runway — not 2,400,000 a day and four hours."""
    start = clock()
    for amount in (200_000, 150_000, 100_000):
        await read(gw, sim, amount)
        clock.advance(1800)
    clock.advance(-1800)
    for _ in range(6 * 24):
        clock.advance(3600)
        await read(gw, sim)
    runway = (await signals(gw, start))["runway"]
    burn = Decimal(runway["burnPerDay"]["amount"])
    assert burn == (Decimal(100_000) / Decimal(6 * 86400 + 3600) * 86400).quantize(Decimal("0.01"))
    days_left = (datetime.fromisoformat(runway["zeroAt"]).timestamp() - clock()) / 86400
    assert 6 < days_left < 6.1  # 100,000 at ≈ 16,552 a day


async def test_2_a_second_change_inside_one_bucket_is_kept(
    sim: Simulator, clock: FakeClock, gw: GatewayClient
) -> None:
    """A dashboard reads 50,000; a real topUp of 60,000 thirty seconds later; then two hours
    of polling: the history ends at 110,000, as the balance does."""
    start = clock()
    await read(gw, sim, 50_000)
    clock.advance(30)  # the same minute: one bucket
    topup = await gw.query(
        'mutation { topUp(input: {accountId: "ourvoice-sn", amount: "60000", '
        'paymentMethod: "MTN MOMO", paymentReference: "r-1", idempotencyKey: "k-1"}) '
        "{ __typename } }"
    )
    assert topup["data"]["topUp"]["__typename"] == "TopUpSucceeded"
    await read(gw, sim)
    for _ in range(24):
        clock.advance(300)
        await read(gw, sim)
    history = (await signals(gw, start))["history"]
    assert history[-1]["available"]["amount"] == "110000"
    assert history[0]["available"]["amount"] in ("50000", "110000")


async def test_3_replicas_sharing_a_journal_never_hide_a_change_or_an_event(
    sim: Simulator, sim_transport: httpx.AsyncBaseTransport, clock: FakeClock, shared_journal: str
) -> None:
    """A reads 50,000 (warning), B reads 250,000 (recovered), A reads 50,000, 40,000, 30,000:
    a second warning, and the history has the 50,000 after the 250,000."""
    start = clock()
    receiver = Receiver(clock=clock)
    async with serving(receiver.app) as url, AsyncExitStack() as stack:
        settings = dataclasses.replace(
            with_webhook(demo_settings(), url), idempotency=IdempotencySettings(url=shared_journal)
        )
        a = await stack.enter_async_context(running_gateway(settings, sim_transport, clock))
        b = await stack.enter_async_context(running_gateway(settings, sim_transport, clock))
        for gw, amount in ((a, 50_000), (b, 250_000), (a, 50_000), (a, 40_000), (a, 30_000)):
            await read(gw, sim, amount)
            clock.advance(60)
        history = (await signals(b, start))["history"]
    assert [(e["type"], e["data"]["available"]["amount"]) for e in receiver.events()] == [
        ("balance.warning", "50000"),
        ("balance.recovered", "250000"),
        ("balance.warning", "50000"),
    ]
    amounts = [p["available"]["amount"] for p in history]
    assert amounts == ["30000"]  # one hour: its last point
    assert receiver.unverified == []


async def test_3b_every_change_is_a_point_across_replicas(
    sim: Simulator, sim_transport: httpx.AsyncBaseTransport, clock: FakeClock, shared_journal: str
) -> None:
    start = clock()
    async with AsyncExitStack() as stack:
        settings = dataclasses.replace(
            demo_settings(), idempotency=IdempotencySettings(url=shared_journal)
        )
        a = await stack.enter_async_context(running_gateway(settings, sim_transport, clock))
        b = await stack.enter_async_context(running_gateway(settings, sim_transport, clock))
        for gw, amount in ((a, 50_000), (b, 250_000), (a, 50_000), (a, 40_000)):
            clock.advance(3600)
            await read(gw, sim, amount)
        history = (await signals(a, start))["history"]
    assert [p["available"]["amount"] for p in history] == ["50000", "250000", "50000", "40000"]


async def test_4_a_level_change_and_its_deliveries_are_one_transaction(
    sim: Simulator, sim_transport: httpx.AsyncBaseTransport, clock: FakeClock, shared_journal: str
) -> None:
    """Creating the delivery fails once (a trigger in the real database refuses it, as a
    failover would): the level change is not kept either, and the next read notifies."""
    receiver = Receiver(clock=clock)
    journal = open_journal(shared_journal)
    postgres = shared_journal.startswith("postgres")
    async with serving(receiver.app) as url:
        settings = dataclasses.replace(
            with_webhook(demo_settings(), url), idempotency=IdempotencySettings(url=shared_journal)
        )
        async with running_gateway(settings, sim_transport, clock) as gw:
            await read(gw, sim, 150_000)  # OK
            clock.advance(60)
            tables = [t for t in ("webhook_outbox", "webhook_deliveries") if await has(journal, t)]
            for table in tables:
                for statement in refuse_inserts(table, postgres):
                    await journal.database.run(statement)
            await read(gw, sim, 10_000)  # CRITICAL: its delivery refused
            for table in tables:
                on = f" ON {table}" if postgres else ""
                await journal.database.run(f"DROP TRIGGER refuse_{table}{on}")
            assert receiver.events() == []
            clock.advance(60)
            await read(gw, sim, 9_000)  # still CRITICAL: now notified
    await journal.close()
    assert [e["type"] for e in receiver.events()] == ["balance.critical"]


async def has(journal: Any, table: str) -> bool:
    try:
        await journal.database.run(f"SELECT 1 FROM {table} WHERE 1 = 0")
    except Exception:
        return False
    return True


def refuse_inserts(table: str, postgres: bool) -> list[str]:
    """A trigger refusing every insert into `table` (the database's own failure)."""
    if postgres:
        return [
            "CREATE OR REPLACE FUNCTION refuse_insert() RETURNS trigger AS $$ BEGIN "
            "RAISE EXCEPTION 'simulated failover'; END $$ LANGUAGE plpgsql",
            f"CREATE TRIGGER refuse_{table} BEFORE INSERT ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION refuse_insert()",
        ]
    return [
        f"CREATE TRIGGER refuse_{table} BEFORE INSERT ON {table} "
        "BEGIN SELECT RAISE(ABORT, 'simulated failover'); END"
    ]


async def test_5_a_balance_flapping_around_its_warning_notifies_once(
    sim: Simulator, sim_transport: httpx.AsyncBaseTransport, clock: FakeClock
) -> None:
    """100,001 / 99,999 around warning = 100,000, read every 20 s for 400 s: one warning,
    not nineteen webhooks."""
    receiver = Receiver(clock=clock)
    async with (
        serving(receiver.app) as url,
        running_gateway(with_webhook(demo_settings(), url), sim_transport, clock) as gw,
    ):
        for step in range(20):
            await read(gw, sim, 100_001 if step % 2 == 0 else 99_999)
            clock.advance(20)
    assert [e["type"] for e in receiver.events()] == ["balance.warning"]


async def test_7_changing_every_seconds_hides_no_history(
    sim: Simulator, sim_transport: httpx.AsyncBaseTransport, clock: FakeClock
) -> None:
    """Three hours read every ten minutes with `every_seconds = 60`, then a restart with
    3600: every hour still has its point, and the runway is there."""
    start = clock()
    settings = dataclasses.replace(demo_settings(), history=HistorySettings(every_seconds=60))
    async with running_gateway(settings, sim_transport, clock) as gw:
        for step in range(19):
            await read(gw, sim, 200_000 - 1_000 * step)
            clock.advance(600)
    clock.advance(-600)
    hourly = dataclasses.replace(settings, history=HistorySettings(every_seconds=3600))
    async with running_gateway(hourly, sim_transport, clock) as gw:
        found = await signals(gw, start)
    assert len(found["history"]) == 4  # the last point of each hour since the start
    assert found["history"][-1]["available"]["amount"] == "182000"
    assert found["runway"] is not None
