"""Yesterday's close in the background (`[daily_close] watch`): two replicas sharing the
journal's database close the same UNEXPLAINED day and one `daily_close.unexplained` event
is created, delivered signed (verified by the `standardwebhooks` library), and the gauge
says the unexplained amount; when the close is due, and what is tried again."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import httpx
import pytest
from prometheus_client import CollectorRegistry, generate_latest

from gateway.config.secret import Secret
from gateway.config.settings import DailyCloseSettings, WebhookSettings
from gateway.errors import ConfigError
from gateway.services.close_watch import MAX_TRIES, RETRY_SECONDS, CloseWatch
from gateway.services.daily_close import AccountClose
from gateway.services.journal import open_journal
from gateway.simulator import create_simulator
from gateway.simulator.books import Movement
from gateway.simulator.state import SimState
from tests.helpers import (
    FakeClock,
    GatewayClient,
    demo_settings,
    parse_settings,
    running_gateway,
    serving,
)
from tests.webhook_receiver import SECRET, Receiver

DAY = date(2030, 3, 14)  # a day no other test's history reaches
START = datetime(2030, 3, 14, tzinfo=UTC).timestamp()
UGX = "muda-ug:UGX:issuer_ugx"
READ = '{ balances(accountIds: ["muda-ug"]) { complete } }'


async def read_at(gw: GatewayClient, clock: FakeClock, at: float) -> None:
    """A fresh read of muda-ug at `at`, written to the history."""
    clock.now = at
    assert (await gw.query(READ))["data"]["balances"]["complete"]
    await gw.app.state.recorder.flush()


@pytest.fixture
async def cleaned(journal_url: str) -> AsyncIterator[str]:
    """The journal's database; this test's close events and their deliveries removed after
    (the PostgreSQL schema is the whole run's)."""
    yield journal_url
    journal = open_journal(journal_url)
    db = journal.database
    rows, _ = await db.run("SELECT event FROM daily_close_events WHERE day = ?", (DAY.isoformat(),))
    for (event,) in rows:
        await db.run("DELETE FROM webhook_outbox WHERE id = ?", (event,))
    await db.run("DELETE FROM daily_close_events WHERE day = ?", (DAY.isoformat(),))
    await db.run(
        "DELETE FROM balance_points WHERE at >= ? AND at < ?", (START - 7200, START + 2 * 86400)
    )
    await journal.close()


async def test_two_replicas_make_one_signed_event_per_balance_and_day(cleaned: str) -> None:
    clock = FakeClock(START - 1800)
    sim = create_simulator(SimState(clock=clock))
    transport = httpx.ASGITransport(app=sim.app)
    receiver = Receiver(clock=clock)
    endpoint = f"close{uuid.uuid4().hex[:8]}"  # deliveries of other tests are not ours
    # A pull of 1,000 UGX (fee 100) moves the balance at noon; Muda's statement never lists it.
    sim.state.books.post(
        "muda-ug",
        Movement(
            "m-close",
            "UGX",
            "PULL",
            True,
            Decimal(1000),
            START + 43200,
            Decimal(100),
            fault="missing_row",
        ),
    )
    async with serving(receiver.app) as url:
        settings = demo_settings()
        settings = dataclasses.replace(
            settings,
            accounts={"muda-ug": settings.accounts["muda-ug"]},
            idempotency=dataclasses.replace(settings.idempotency, url=cleaned),
            daily_close=DailyCloseSettings(watch=True, after_minutes=15),
            webhooks=(WebhookSettings(endpoint, f"{url}/hooks", Secret(SECRET)),),
        )
        async with (
            running_gateway(settings, transport, clock) as one,
            running_gateway(settings, transport, clock) as two,
        ):
            for at in (START - 600, START + 43000, START + 43400, START + 86400 - 600):
                await read_at(one, clock, at)
            await read_at(two, clock, START + 86400 + 300)
            watches: list[CloseWatch] = [one.app.state.close_watch, two.app.state.close_watch]
            clock.now = START + 86400 + 600  # 00:10: the close of the 14th is not due yet
            assert all(w.day_due("muda-ug") < DAY for w in watches)
            clock.now = START + 86400 + 900  # 00:15: it is
            closes = [await w.due() for w in watches]
            again = [await w.due() for w in watches]  # done: nothing is closed twice
            for made in closes:
                (close,) = made
                (statement,) = [s for s in close.statements if s.balance_id == UGX]
                assert (close.day, statement.status.value) == (DAY, "UNEXPLAINED")
                assert statement.unexplained == Decimal(900)
            assert again == [[], []]
            sent = [await w.notifier.deliver_due() for w in watches if w.notifier]
            scrape = (await one.app.state.exposition()).decode()
    assert sum(sent) == 1
    (event,) = receiver.events()
    assert receiver.unverified == [] and receiver.late == []
    assert event["type"] == "daily_close.unexplained"
    data = event["data"]
    assert {k: data[k] for k in ("account", "balance", "day", "status", "unexplained")} == {
        "account": "muda-ug",
        "balance": UGX,
        "day": "2030-03-14",
        "status": "UNEXPLAINED",
        "unexplained": "900.0000000",  # Muda's ledger precision, as GraphQL answers it
    }
    assert data["currency"] == "UGX"
    assert [(f["kind"], f["amount"]) for f in data["findings"]] == [("MISSING_ROW", "900.0000000")]
    line = (
        f'gateway_daily_close_unexplained{{account="muda-ug",balance="{UGX}",currency="UGX"}} 900.0'
    )
    assert line in scrape


class Closing:
    """A close service that answers what it is told, counting the closes asked."""

    def __init__(self, answers: list[AccountClose]) -> None:
        self.answers = answers
        self.asked: list[date] = []

    def zone(self, account_id: str) -> ZoneInfo:
        return ZoneInfo("Africa/Cairo")

    async def close(self, day: date, account_ids: list[str]) -> list[AccountClose]:
        self.asked.append(day)
        return [self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]]


async def test_an_unreadable_close_is_tried_again_a_few_times_then_left() -> None:
    clock = FakeClock(datetime(2030, 3, 15, 1, tzinfo=UTC).timestamp())  # 03:00 in Cairo
    failed = AccountClose("p", DAY, "Africa/Cairo", (), (), (), "balances: UPSTREAM_ERROR (x)")
    closing = Closing([failed])
    watch = CloseWatch(closing, ["p"], clock, 900.0)  # type: ignore[arg-type]
    for _ in range(MAX_TRIES + 2):
        await watch.due()
        await watch.due()  # not yet due again
        clock.advance(RETRY_SECONDS)
    assert closing.asked == [DAY] * MAX_TRIES
    assert "gateway_daily_close_unexplained{" not in generate_latest(_registry(watch)).decode()


def _registry(watch: CloseWatch) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(watch)
    return registry


def test_watching_without_history_is_a_configuration_problem() -> None:
    account = {"provider": "ourvoice", "base_url": "https://x", "api_key": "env:K"}
    data = {
        "accounts": {"ov": account},
        "history": {"enabled": False},
        "daily_close": {"watch": True, "after_minutes": 0},
    }
    with pytest.raises(ConfigError) as raised:
        parse_settings(data, {"K": "k" * 12})
    found = {p.location: p.message for p in raised.value.problems}
    assert "history" in found["daily_close.watch"]
    assert "from 1 to 720" in found["daily_close.after_minutes"]
