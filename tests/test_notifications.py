"""Webhook notifications, on SQLite and PostgreSQL for real and a real HTTP receiver on
loopback: one event per level change whatever the replicas and restarts, signed, retried
with backoff under one id, delivery state kept across restarts — and end to end, a balance
the simulator lowers below its threshold notifies once."""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import uuid
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.config.accounts import Secret
from gateway.config.settings import WebhookSettings, parse_settings
from gateway.domain import Asset, AssetKind, Balance, Level, Money, Thresholds
from gateway.errors import ConfigError
from gateway.metrics import Metrics
from gateway.services.journal import Database, open_journal
from gateway.services.notifications import Notifier, backoff
from gateway.simulator import Simulator
from gateway.upstream.webhooks import WebhookClient
from tests.helpers import (
    FakeClock,
    demo_settings,
    ourvoice_fake,
    running_gateway,
    sample,
    serving,
)

SECRET = "whsec-test-0123456789abcdef"


class Receiver:
    """A webhook endpoint: answers each request with the next status (then 200)."""

    def __init__(self) -> None:
        self.got: list[tuple[dict[str, str], bytes]] = []
        self.statuses: list[int] = []
        self.app = Starlette(routes=[Route("/hooks", self.hook, methods=["POST"])])

    async def hook(self, request: Request) -> Response:
        self.got.append((dict(request.headers), await request.body()))
        return Response(status_code=self.statuses.pop(0) if self.statuses else 200)

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(body) for _, body in self.got]


def verified(headers: dict[str, str], body: bytes) -> bool:
    stamp, signed = headers["webhook-signature"].split(",")
    expected = hmac.new(
        SECRET.encode(), f"{stamp[2:]}.".encode() + body, hashlib.sha256
    ).hexdigest()
    return stamp[2:] == headers["webhook-timestamp"] and hmac.compare_digest(signed[3:], expected)


@pytest.fixture
async def database(journal_url: str) -> AsyncIterator[Database]:
    url = journal_url
    journal = open_journal(url)
    yield journal.database
    for table in ("balance_levels", "webhook_deliveries"):
        await journal.database.run(f"DELETE FROM {table}")  # this run's own file/schema
    await journal.close()


def leveled(level: Level, amount: str, balance_id: str) -> Balance:
    xof = Asset("XOF", "XOF", AssetKind.PREPAID_CREDIT)
    money = Money(Decimal(amount), "XOF")
    thresholds = Thresholds(Money(Decimal(100_000), "XOF"), Money(Decimal(20_000), "XOF"))
    return Balance(balance_id, xof, money, money, thresholds=thresholds, level=level)


async def test_one_event_per_change_across_replicas_and_restarts(database: Database) -> None:
    receiver = Receiver()
    clock = FakeClock()
    balance_id = f"a:{uuid.uuid4().hex}"
    client = WebhookClient()
    async with serving(receiver.app) as url:
        endpoint = WebhookSettings("ops", f"{url}/hooks", Secret(SECRET))

        def replica() -> Notifier:
            return Notifier(database, [endpoint], clock, client.post)

        one, two = replica(), replica()
        assert await one.observe("a", leveled(Level.OK, "150000", balance_id)) is None
        first = await one.observe("a", leveled(Level.WARNING, "90000", balance_id))
        again = await two.observe("a", leveled(Level.WARNING, "90000", balance_id))
        restarted = await replica().observe("a", leveled(Level.WARNING, "89000", balance_id))
        assert first is not None and again is None and restarted is None
        critical = await two.observe("a", leveled(Level.CRITICAL, "10000", balance_id))
        recovered = await replica().observe("a", leveled(Level.OK, "500000", balance_id))
        assert await one.deliver_due() == 3 and await two.deliver_due() == 0
    await client.aclose()
    events = receiver.events()
    assert [e["type"] for e in events] == [
        "balance.warning",
        "balance.critical",
        "balance.recovered",
    ]
    assert [e["id"] for e in events] == [first, critical, recovered]
    assert events[0]["data"] == {
        "account": "a",
        "balance": balance_id,
        "asset": "XOF",
        "kind": "PREPAID_CREDIT",
        "level": "WARNING",
        "previous_level": "OK",
        "available": {"amount": "90000", "currency": "XOF"},
        "thresholds": {
            "warning": {"amount": "100000", "currency": "XOF"},
            "critical": {"amount": "20000", "currency": "XOF"},
        },
    }
    assert all(verified(h, b) for h, b in receiver.got)
    assert [h["webhook-id"] for h, _ in receiver.got] == [first, critical, recovered]


async def test_a_failed_delivery_is_retried_with_backoff_under_the_same_id_even_after_a_restart(
    database: Database,
) -> None:
    receiver = Receiver()
    receiver.statuses = [500, 503]
    clock = FakeClock()
    client = WebhookClient()
    async with serving(receiver.app) as url:
        endpoint = WebhookSettings("ops", f"{url}/hooks", Secret(SECRET))
        metrics = Metrics()
        notifier = Notifier(database, [endpoint], clock, client.post, metrics)
        event = await notifier.observe("a", leveled(Level.CRITICAL, "1", f"a:{uuid.uuid4().hex}"))
        assert await notifier.deliver_due() == 0  # 500: again in 10 s
        clock.advance(backoff(1) - 1)
        assert await notifier.deliver_due() == 0 and len(receiver.got) == 1  # not yet due
        clock.advance(1)
        assert await notifier.deliver_due() == 0  # 503: again in 30 s
        restarted = Notifier(database, [endpoint], clock, client.post, metrics)  # from the DB
        clock.advance(backoff(2))
        assert await restarted.deliver_due() == 1
        assert await restarted.deliver_due() == 0  # delivered: never sent again
    await client.aclose()
    assert [h["webhook-id"] for h, _ in receiver.got] == [event] * 3
    assert all(verified(h, b) for h, b in receiver.got)
    scraped = metrics.render().decode()
    for outcome, count in (("retried", 2), ("delivered", 1), ("failed", 0)):
        assert (
            sample(scraped, "gateway_webhook_deliveries_total", endpoint="ops", outcome=outcome)
            == count
        )
    assert backoff(1) == 10 and backoff(3) == 90 and backoff(20) == 3600


async def test_an_unreachable_endpoint_is_retried_not_lost(database: Database) -> None:
    clock = FakeClock()
    client = WebhookClient()
    endpoint = WebhookSettings("ops", "http://127.0.0.1:9/hooks", Secret(SECRET))  # discard
    notifier = Notifier(database, [endpoint], clock, client.post)
    await notifier.observe("a", leveled(Level.WARNING, "5", f"a:{uuid.uuid4().hex}"))
    assert await notifier.deliver_due() == 0
    rows, _ = await database.run("SELECT state, attempts, last_error FROM webhook_deliveries")
    await client.aclose()
    assert [(state, attempts) for state, attempts, _ in rows] == [("pending", 1)]
    assert rows[0][2] == "ConnectError"


async def test_a_balance_falling_below_its_threshold_notifies_once(
    sim: Simulator, sim_transport: httpx.AsyncBaseTransport, clock: FakeClock
) -> None:
    receiver = Receiver()
    async with serving(receiver.app) as url:
        settings = dataclasses.replace(
            demo_settings(), webhooks=(WebhookSettings("ops", f"{url}/hooks", Secret(SECRET)),)
        )
        async with running_gateway(settings, sim_transport, clock) as gw:
            notifier = gw.app.state.notifier
            for amount in ("50000", "40000", "10000", "10000", "250000"):
                ourvoice_fake(sim).balances["ourvoice-sn"] = Decimal(amount)
                await gw.query('{ balances(accountIds: ["ourvoice-sn"]) { complete } }')
                await notifier.flush()
                await notifier.deliver_due()
                clock.advance(60)
    events = receiver.events()
    assert [(e["type"], e["data"]["available"]["amount"]) for e in events] == [
        ("balance.warning", "50000"),  # first seen below warning: a change from OK
        ("balance.critical", "10000"),
        ("balance.recovered", "250000"),
    ]


@pytest.mark.parametrize(
    ("entry", "where", "says"),
    [
        ({"url": "ftp://x/hooks", "secret": SECRET}, "webhooks.ops.url", "http(s)"),
        ({"url": "http://example.com/h", "secret": SECRET}, "webhooks.ops.url", "https"),
        ({"url": "https://example.com/h", "secret": "short"}, "webhooks.ops.secret", "16"),
        ({"url": "https://example.com/h"}, "webhooks.ops.secret", "non-empty"),
    ],
)
def test_a_webhook_misconfigured_is_named(entry: dict[str, Any], where: str, says: str) -> None:
    account = {"provider": "ourvoice", "base_url": "https://x", "api_key": "env:K"}
    data = {"accounts": {"ov": account}, "webhooks": {"ops": entry}}
    env = {"K": "k" * 12}
    if "secret" in entry:
        env["S"] = entry["secret"]
        data["webhooks"]["ops"] = {**entry, "secret": "env:S"}
    with pytest.raises(ConfigError) as raised:
        parse_settings(data, env)
    found = {p.location: p.message for p in raised.value.problems}
    assert where in found and says in found[where], found
