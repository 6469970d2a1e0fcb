"""Webhook notifications, on SQLite and PostgreSQL for real and a real HTTP receiver on
loopback: one event per level change whatever the replicas and restarts, signed, retried
with backoff under one id, delivery state kept across restarts — and end to end, a balance
the simulator lowers below its threshold notifies once."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from decimal import Decimal
from typing import Any

import httpx
import pytest

from gateway.app import secrets_of
from gateway.config.secret import Secret
from gateway.config.settings import WebhookSettings
from gateway.domain import Asset, AssetKind, Balance, Money, Thresholds
from gateway.errors import ConfigError
from gateway.observability import log_format
from gateway.observability.metrics import Metrics
from gateway.services.journal import Database, open_journal
from gateway.services.notifications import Notifier, backoff
from gateway.simulator import Simulator
from gateway.upstream.webhooks import WebhookClient
from tests.helpers import (
    ROOT,
    FakeClock,
    demo_settings,
    ourvoice_fake,
    parse_settings,
    running_gateway,
    sample,
    serving,
)
from tests.webhook_receiver import SECRET, Receiver

TABLES = ("balance_alerts", "webhook_outbox")


@pytest.fixture
async def database(journal_url: str) -> AsyncIterator[Database]:
    journal = open_journal(journal_url)
    yield journal.database
    for table in TABLES:
        await journal.database.run(f"DELETE FROM {table}")
    await journal.close()


def reading(amount: str, balance_id: str, hysteresis: str | None = None) -> Balance:
    """A balance read at `amount` XOF, warning 100,000 and critical 20,000."""
    xof = Asset("XOF", "XOF", AssetKind.PREPAID_CREDIT)
    money = Money(Decimal(amount), "XOF")
    margin = Money(Decimal(hysteresis), "XOF") if hysteresis is not None else None
    thresholds = Thresholds(Money(Decimal(100_000), "XOF"), Money(Decimal(20_000), "XOF"), margin)
    return Balance(balance_id, xof, money, money, thresholds=thresholds)


async def test_one_event_per_change_across_replicas_and_restarts(database: Database) -> None:
    clock = FakeClock()
    receiver = Receiver(clock=clock)
    balance_id = f"a:{uuid.uuid4().hex}"
    client = WebhookClient()
    t = clock()
    async with serving(receiver.app) as url:
        endpoint = WebhookSettings("ops", f"{url}/hooks", Secret(SECRET))

        def replica() -> Notifier:
            return Notifier(database, [endpoint], clock, client.post)

        one, two = replica(), replica()
        assert await one.observe("a", reading("150000", balance_id), t) is None
        first = await one.observe("a", reading("90000", balance_id), t + 1)
        again = await two.observe("a", reading("90000", balance_id), t + 1)  # the same read
        restarted = await replica().observe("a", reading("89000", balance_id), t + 2)
        assert first is not None and again is None and restarted is None
        critical = await two.observe("a", reading("10000", balance_id), t + 3)
        late = await one.observe("a", reading("500000", balance_id), t + 2.5)  # superseded
        recovered = await replica().observe("a", reading("500000", balance_id), t + 4)
        assert late is None
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
        "read_at": "2024-06-04T00:43:27Z",
        "thresholds": {
            "warning": {"amount": "100000", "currency": "XOF"},
            "critical": {"amount": "20000", "currency": "XOF"},
            "hysteresis": None,
        },
    }
    assert receiver.unverified == [] and len(receiver.got) == 3
    assert [h["webhook-id"] for h, _ in receiver.got] == [first, critical, recovered]


async def test_a_failed_delivery_is_retried_with_backoff_under_the_same_id_even_after_a_restart(
    database: Database,
) -> None:
    clock = FakeClock()
    receiver = Receiver(clock=clock)
    receiver.statuses = [500, 503]
    client = WebhookClient()
    async with serving(receiver.app) as url:
        endpoint = WebhookSettings("ops", f"{url}/hooks", Secret(SECRET))
        metrics = Metrics()
        notifier = Notifier(database, [endpoint], clock, client.post, metrics)
        event = await notifier.observe("a", reading("1", f"a:{uuid.uuid4().hex}"), clock())
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
    assert receiver.unverified == []
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
    await notifier.observe("a", reading("5", f"a:{uuid.uuid4().hex}"), clock())
    assert await notifier.deliver_due() == 0
    rows, _ = await database.run("SELECT state, attempts, last_error FROM webhook_outbox")
    await client.aclose()
    assert [(state, attempts) for state, attempts, _ in rows] == [("pending", 1)]
    assert rows[0][2] == "ConnectError"


async def test_events_of_one_balance_are_delivered_in_order(database: Database) -> None:
    """The warning's endpoint fails once: the critical that follows waits for it."""
    clock = FakeClock()
    receiver = Receiver(clock=clock)
    receiver.statuses = [500]
    client = WebhookClient()
    balance_id, other = f"a:{uuid.uuid4().hex}", f"a:{uuid.uuid4().hex}"
    async with serving(receiver.app) as url:
        endpoint = WebhookSettings("ops", f"{url}/hooks", Secret(SECRET))
        notifier = Notifier(database, [endpoint], clock, client.post)
        warning = await notifier.observe("a", reading("90000", balance_id), clock())
        assert await notifier.deliver_due() == 0  # the warning: 500
        critical = await notifier.observe("a", reading("100", balance_id), clock() + 1)
        elsewhere = await notifier.observe("a", reading("100", other), clock() + 1)
        assert await notifier.deliver_due() == 1  # another balance's event is not held up
        clock.advance(backoff(1))
        assert await notifier.deliver_due() == 2  # the warning at last, then the critical
    await client.aclose()
    assert [h["webhook-id"] for h, _ in receiver.got] == [warning, elsewhere, warning, critical]


async def test_delivered_and_failed_deliveries_are_pruned_after_the_retention(
    database: Database,
) -> None:
    clock = FakeClock()
    client = WebhookClient()
    receiver = Receiver(clock=clock)
    async with serving(receiver.app) as url:
        endpoint = WebhookSettings("ops", f"{url}/hooks", Secret(SECRET))
        notifier = Notifier(database, [endpoint], clock, client.post, retention_days=2)
        await notifier.observe("a", reading("90000", f"a:{uuid.uuid4().hex}"), clock())
        await notifier.deliver_due()
        clock.advance(86400)
        await notifier.observe("a", reading("90000", f"a:{uuid.uuid4().hex}"), clock())
        receiver.statuses = [500]
        await notifier.deliver_due()  # this one stays pending
        clock.advance(2 * 86400 + 1)
        assert await notifier.prune(clock()) == 1  # the delivered one, over two days old
        clock.advance(86400)
        assert await notifier.prune(clock()) == 0  # a pending delivery is never pruned
    await client.aclose()
    rows, _ = await database.run("SELECT state FROM webhook_outbox")
    assert [state for (state,) in rows] == ["pending"]


async def test_signatures_verify_with_the_standard_webhooks_library_on_the_real_clock(
    database: Database,
) -> None:
    receiver = Receiver()  # no injected clock: the library's verify(), tolerance included
    client = WebhookClient()
    async with serving(receiver.app) as url:
        endpoint = WebhookSettings("ops", f"{url}/hooks", Secret(SECRET))
        notifier = Notifier(database, [endpoint], time.time, client.post)
        await notifier.observe("a", reading("10", f"a:{uuid.uuid4().hex}"), time.time())
        assert await notifier.deliver_due() == 1
        wrong = Receiver("whsec_" + "A" * 43 + "=")  # another secret: refused
        async with serving(wrong.app) as other:
            bad = Notifier(
                database,
                [WebhookSettings("x", f"{other}/hooks", Secret(SECRET))],
                time.time,
                client.post,
            )
            await bad.observe("a", reading("10", f"a:{uuid.uuid4().hex}"), time.time())
            assert await bad.deliver_due() == 0
    await client.aclose()
    assert receiver.unverified == [] and len(receiver.got) == 1
    headers, _ = receiver.got[0]
    assert headers["webhook-signature"].startswith("v1,")
    assert len(wrong.unverified) == 1


async def test_a_balance_falling_below_its_threshold_notifies_once(
    sim: Simulator, sim_transport: httpx.AsyncBaseTransport, clock: FakeClock
) -> None:
    receiver = Receiver(clock=clock)
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
    assert receiver.unverified == []


@pytest.mark.parametrize(
    ("entry", "where", "says"),
    [
        ({"url": "ftp://x/hooks", "secret": SECRET}, "webhooks.ops.url", "http(s)"),
        ({"url": "http://example.com/h", "secret": SECRET}, "webhooks.ops.url", "https"),
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


async def test_the_readme_receiver_verifies_a_real_delivery(database: Database) -> None:
    """The docs' Python receiver (docs/dashboard.md), run as written, on a delivery the
    gateway sent."""
    text = (ROOT / "docs" / "dashboard.md").read_text()
    code = text.split("<!-- receiver -->\n```python\n", 1)[1].split("```", 1)[0]
    namespace: dict[str, Any] = {}
    exec(code, namespace)
    got: list[Any] = []

    async def post(url: str, body: str, headers: Mapping[str, str]) -> int:
        got.append(namespace["handle"](body.encode(), dict(headers), SECRET))
        return 200

    endpoint = WebhookSettings("ops", "https://receiver.example/hooks", Secret(SECRET))
    notifier = Notifier(database, [endpoint], time.time, post)
    event = await notifier.observe("a", reading("10", f"a:{uuid.uuid4().hex}"), time.time())
    assert await notifier.deliver_due() == 1
    assert [e["id"] for e in got] == [event]
    forged = {"webhook-id": "x", "webhook-timestamp": str(int(time.time()))}
    with pytest.raises(Exception, match="signature"):
        namespace["handle"](b"{}", {**forged, "webhook-signature": "v1,AAAA"}, SECRET)


def test_webhook_secrets_are_redacted_from_every_log_line() -> None:
    settings = dataclasses.replace(
        demo_settings(),
        webhooks=(WebhookSettings("ops", "https://ops.example/hooks", Secret(SECRET)),),
    )
    assert SECRET in secrets_of(settings)
    log_format.add_secrets(secrets_of(settings))
    assert SECRET not in log_format.redact(f"POST failed with secret {SECRET} in it")


async def test_a_removed_endpoint_holds_up_no_other(database: Database) -> None:
    """120 events wait for an endpoint that is then removed from the configuration: the
    remaining endpoint still gets every new event, and the orphans go with the retention."""
    clock = FakeClock()
    got: list[str] = []

    async def post(url: str, body: str, headers: Mapping[str, str]) -> int:
        if "old" in url:
            raise httpx.ConnectError("refused")
        got.append(headers["webhook-id"])
        return 200

    old = WebhookSettings("old", "https://old.example/hooks", Secret(SECRET))
    ops = WebhookSettings("ops", "https://ops.example/hooks", Secret(SECRET))
    before = Notifier(database, [old, ops], clock, post, retention_days=1)
    for _ in range(120):
        await before.observe("a", reading("10", f"a:{uuid.uuid4().hex}"), clock())
    await before.deliver_due()
    assert len(got) == 120
    clock.advance(3600)
    after = Notifier(database, [ops], clock, post, retention_days=1)  # `old` removed
    event = await after.observe("a", reading("10", f"a:{uuid.uuid4().hex}"), clock())
    assert await after.deliver_due() == 1 and got[-1] == event
    clock.advance(86400)
    assert await after.prune(clock()) == 2 * 120  # the delivered, and the orphans
    rows, _ = await database.run("SELECT COUNT(*) FROM webhook_outbox")
    assert rows == [(1,)]


async def test_a_late_answer_never_undoes_another_replicas_delivery(database: Database) -> None:
    """Replica A sends a balance's first event to a slow endpoint after three timeouts to
    another; replica B runs meanwhile. The event is claimed from when A's turn came, so B
    leaves it to A; A's timeout is then a retry, and the two events arrive once each, in
    order."""
    clock = FakeClock()
    bad = WebhookSettings("bad", "https://bad.example/hooks", Secret(SECRET))
    ops = WebhookSettings("ops", "https://ops.example/hooks", Secret(SECRET))
    watched = f"x:{uuid.uuid4().hex}"
    received: list[tuple[str, str]] = []
    sending, answer = asyncio.Event(), asyncio.Event()

    async def post_a(url: str, body: str, headers: Mapping[str, str]) -> int:
        event = json.loads(body)
        if url == bad.url:
            if event["data"]["balance"] != watched:
                clock.advance(10)  # a hanging endpoint: the whole timeout
                raise httpx.ReadTimeout("timed out")
            raise httpx.ConnectError("refused")
        if event["data"]["balance"] == watched and event["type"] == "balance.critical":
            sending.set()
            await answer.wait()
            raise httpx.ReadTimeout("timed out")  # ops was slow, this once
        if event["data"]["balance"] == watched:
            received.append(("A", event["type"]))
        return 200

    async def post_b(url: str, body: str, headers: Mapping[str, str]) -> int:
        event = json.loads(body)
        if url == bad.url:
            raise httpx.ConnectError("refused")
        if event["data"]["balance"] == watched:
            received.append(("B", event["type"]))
        return 200

    a = Notifier(database, [bad, ops], clock, post_a)
    b = Notifier(database, [bad, ops], clock, post_b)
    for _ in range(3):
        await a.observe("a", reading("10", f"a:{uuid.uuid4().hex}"), clock())
    clock.advance(1)
    await a.observe("x", reading("10", watched), clock())  # critical
    clock.advance(1)
    await a.observe("x", reading("500000", watched), clock())  # recovered
    pass_a = asyncio.create_task(a.deliver_due())
    await sending.wait()
    clock.advance(1)
    await b.deliver_due()  # the critical is A's for 30 s from its turn: not sent twice
    answer.set()
    await pass_a
    clock.advance(60)
    await b.deliver_due()
    assert received == [
        ("B", "balance.critical"),
        ("B", "balance.recovered"),
    ]
    rows, _ = await database.run(
        "SELECT state, attempts FROM webhook_outbox WHERE balance = ? AND endpoint = 'ops' "
        "ORDER BY at",
        (watched,),
    )
    assert rows == [("delivered", 2), ("delivered", 1)]
