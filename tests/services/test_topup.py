"""Top-up exactly once: replays, concurrency (one process and two apps on PostgreSQL),
key reuse, every fault mode against the simulator's ledger, restarts, validation."""

from __future__ import annotations

import asyncio
import dataclasses
from decimal import Decimal
from typing import Any

import httpx
import pytest

from gateway.cli import main as cli_main
from gateway.config.settings import IdempotencySettings
from gateway.services.journal import Record, open_journal
from gateway.simulator import Simulator
from tests.helpers import (
    FULL_KEY,
    TOP_UP,
    DelayTransport,
    FakeClock,
    GatewayClient,
    ResetTransport,
    client,
    credits,
    demo_settings,
    free_port,
    ourvoice_fake,
    posts,
    production,
    running_gateway,
    send,
    topup,
    with_account,
)

READER = "bgw_read-only-key-4444444444444444444"


async def test_replaying_a_success_five_times_posts_once(sim: Simulator, gw: GatewayClient) -> None:
    first = await send(gw)
    replays = [await send(gw) for _ in range(5)]
    assert first["__typename"] == "TopUpSucceeded" and first["replayed"] is False
    assert first["transaction"]["amount"] == {"amount": "5000", "currency": "XOF"}
    assert all(r == {**first, "replayed": True} for r in replays)
    assert (posts(sim), credits(sim)) == (1, 1)
    assert ourvoice_fake(sim).balances["ourvoice-sn"] == Decimal("55000")


async def test_50_concurrent_identical_requests_post_once(
    sim: Simulator, sim_transport: httpx.AsyncBaseTransport, clock: FakeClock
) -> None:
    async with running_gateway(demo_settings(), DelayTransport(sim_transport, 0.05), clock) as gw:
        answers = await asyncio.gather(*(send(gw) for _ in range(50)))
    assert (posts(sim), credits(sim)) == (1, 1)
    assert {a["__typename"] for a in answers} == {"TopUpSucceeded"}
    assert sum(not a["replayed"] for a in answers) == 1


async def test_two_apps_sharing_postgresql_post_once(
    pg_url: str, sim: Simulator, sim_transport: httpx.AsyncBaseTransport, clock: FakeClock
) -> None:
    settings = dataclasses.replace(demo_settings(), idempotency=IdempotencySettings(url=pg_url))
    slow = DelayTransport(sim_transport, 0.05)
    key = f"pg-{id(sim)}"
    async with (
        running_gateway(settings, slow, clock) as a,
        running_gateway(settings, slow, clock) as b,
    ):
        answers = await asyncio.gather(*(send(gw, key) for _ in range(25) for gw in (a, b)))
    store = open_journal(pg_url)
    await store.database.run("DELETE FROM topups WHERE key = ?", (key,))
    await store.close()
    assert (posts(sim), credits(sim)) == (1, 1)
    assert {a["__typename"] for a in answers} == {"TopUpSucceeded"}


@pytest.mark.parametrize(
    "change",
    [
        {"amount": "6000"},
        {"currency": "XAF"},
        {"accountId": "ourvoice-ci"},
        {"paymentReference": "PAY-2"},
        {"paymentMethod": "ORANGE MONEY"},
    ],
)
async def test_the_same_key_with_another_input_is_refused(
    change: dict[str, str], sim: Simulator, gw: GatewayClient
) -> None:
    await send(gw)
    reused = await send(gw, **change)
    expected = "VALIDATION" if "currency" in change else "IDEMPOTENCY_KEY_REUSED"
    assert reused["__typename"] == "TopUpRejected" and reused["code"] == expected
    assert (posts(sim), credits(sim)) == (1, 1)


async def test_the_same_key_from_two_clients_is_two_top_ups(
    sim: Simulator, sim_transport: httpx.AsyncBaseTransport, clock: FakeClock
) -> None:
    other = "bgw_second-writer-key-5555555555555555"
    settings = production(
        demo_settings(),
        client("full", FULL_KEY, ("topup:write",), None),
        client("second", other, ("topup:write",), None),
    )
    async with running_gateway(settings, sim_transport, clock) as gw:
        first = await send(gw)
        second = await send(gw.as_key(other))
    assert first["__typename"] == second["__typename"] == "TopUpSucceeded"
    assert not first["replayed"] and not second["replayed"]
    assert (posts(sim), credits(sim)) == (2, 2)


@pytest.mark.parametrize(
    ("fault", "credited"),
    [
        ("commit-then-hang", 1),
        ("commit-then-reset", 1),
        ("accept-then-reset", 0),
        ("503-before-commit", 0),
        ("503-after-commit", 1),
    ],
)
async def test_unknown_outcomes_are_pending_and_never_resent(
    fault: str,
    credited: int,
    sim: Simulator,
    sim_transport: httpx.AsyncBaseTransport,
    clock: FakeClock,
) -> None:
    ourvoice_fake(sim).topup_faults["ourvoice-sn"] = fault
    settings = with_account(demo_settings(), "ourvoice-sn", timeout_seconds=0.2)
    async with running_gateway(settings, ResetTransport(sim_transport), clock) as gw:
        first = await send(gw)
        ourvoice_fake(sim).topup_faults.clear()
        again = await send(gw)  # the client retries: still pending, nothing sent
    assert first["__typename"] == "TopUpPending" and first["replayed"] is False
    assert again == {**first, "replayed": True}
    assert (posts(sim), credits(sim)) == (1, credited)


async def test_a_reset_reported_as_connect_timeout_after_writing_is_pending(
    sim: Simulator, sim_transport: httpx.AsyncBaseTransport, clock: FakeClock
) -> None:
    async with running_gateway(
        demo_settings(), ResetTransport(sim_transport, after_write=True), clock
    ) as gw:
        answer = await send(gw)
    assert answer["__typename"] == "TopUpPending"
    assert credits(sim) == 1  # it was credited: "connect timeout" proved nothing


async def test_an_unparseable_success_is_pending(sim: Simulator, gw: GatewayClient) -> None:
    sim.state.set_faults("ourvoice-sn", malformed=True)
    answer = await send(gw)
    assert answer["__typename"] == "TopUpPending" and credits(sim) == 1


@pytest.mark.parametrize(
    ("status", "code"), [(401, "UPSTREAM_UNAUTHORIZED"), (429, "UPSTREAM_RATE_LIMITED")]
)
async def test_definite_refusals_leave_the_key_reusable(
    status: int, code: str, sim: Simulator, gw: GatewayClient
) -> None:
    sim.state.set_faults("ourvoice-sn", status=status)
    refused = await send(gw)
    sim.state.clear_faults()
    retried = await send(gw)
    assert refused == {
        "__typename": "TopUpRejected",
        "code": code,
        "message": refused["message"],
        "retryable": True,
        "replayed": False,
    }
    assert retried["__typename"] == "TopUpSucceeded" and not retried["replayed"]
    assert (posts(sim), credits(sim)) == (2, 1)


async def test_a_422_is_rejected_and_recorded(sim: Simulator, gw: GatewayClient) -> None:
    sim.state.set_faults("ourvoice-sn", status=422)
    refused = await send(gw)
    sim.state.clear_faults()
    again = await send(gw)
    assert refused["code"] == "UPSTREAM_REJECTED" and refused["retryable"] is False
    assert again == {**refused, "replayed": True}
    assert (posts(sim), credits(sim)) == (1, 0)


async def test_provably_unsent_is_retryable(
    sim_transport: httpx.AsyncBaseTransport, clock: FakeClock
) -> None:
    closed = free_port()  # free a moment ago: nothing listens there
    settings = with_account(demo_settings(), "ourvoice-sn", base_url=f"http://127.0.0.1:{closed}")
    app_settings = settings
    from gateway.app import create_app
    from tests.helpers import GatewayClient as Client
    from tests.helpers import no_sleep

    app = create_app(app_settings, clock=clock, sleep=no_sleep)  # the real aiohttp transport
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://gateway"
        ) as http,
    ):
        answer = await send(Client(http, app))
        journal = await app.state.graphql.topups.journal.records()
    assert answer["__typename"] == "TopUpRejected" and answer["retryable"] is True
    assert answer["code"] == "UPSTREAM_UNAVAILABLE"
    assert journal == []  # the key is free again


async def test_a_restart_finds_in_flight_records_pending_and_never_resends(
    sim: Simulator, sim_transport: httpx.AsyncBaseTransport, clock: FakeClock
) -> None:
    settings = demo_settings()
    store = open_journal(settings.idempotency.url)
    from gateway.services.topups import TopUpRequest, fingerprint

    request = TopUpRequest("ourvoice-sn", Decimal("5000"), None, "MTN MOMO", "PAY-1", "k-1")
    await store.begin(
        Record(  # what a gateway that died mid-send left behind
            "dev:anonymous",
            "k-1",
            fingerprint(request, "XOF"),
            "ourvoice-sn",
            {
                "amount": "5000",
                "currency": "XOF",
                "payment_method": "MTN MOMO",
                "payment_reference": "PAY-1",
            },
            "in_flight",
            "dead-owner",
            clock() - 1,
            None,
            clock() - 60,
        )
    )
    await store.close()
    async with running_gateway(settings, sim_transport, clock) as gw:  # the SQLite file reopened
        answer = await send(gw)
    assert answer["__typename"] == "TopUpPending" and answer["replayed"] is True
    assert posts(sim) == 0


@pytest.mark.parametrize(
    "change",
    [
        {"amount": "0"},
        {"amount": "-5"},
        {"amount": "10.5"},
        {"amount": "100000000"},
        {"currency": "EUR"},
        {"paymentMethod": " "},
        {"paymentReference": ""},
        {"idempotencyKey": "x" * 256},
        {"idempotencyKey": "bad\nkey"},
    ],
)
async def test_invalid_input_is_rejected_before_anything(
    change: dict[str, str], sim: Simulator, gw: GatewayClient
) -> None:
    answer = (await gw.query(TOP_UP, topup(**change)))["data"]["topUp"]
    journal = await gw.app.state.graphql.topups.journal.records()
    assert answer["__typename"] == "TopUpRejected" and answer["code"] == "VALIDATION"
    assert journal == [] and posts(sim) == 0


async def test_refusals_before_sending_are_rejections(
    sim: Simulator, sim_transport: httpx.AsyncBaseTransport, clock: FakeClock
) -> None:
    settings = production(
        demo_settings(),
        client("full", FULL_KEY, ("topup:write",), ("ourvoice-sn", "magma")),
        client("reader", READER, ("balances:read",), None),
    )
    async with running_gateway(settings, sim_transport, clock) as gw:
        unsupported = await send(gw, accountId="magma")
        invisible = await send(gw, accountId="ourvoice-ci")
        forbidden = await send(gw.as_key(READER))
    assert [a["code"] for a in (unsupported, invisible, forbidden)] == [
        "UNSUPPORTED",
        "NOT_FOUND",
        "FORBIDDEN",
    ]
    assert posts(sim) == 0


async def test_two_top_ups_in_one_document_are_refused(sim: Simulator, gw: GatewayClient) -> None:
    double = """mutation($input: TopUpInput!) { a: topUp(input: $input) { __typename }
                b: topUp(input: $input) { __typename } }"""
    via_fragment = """mutation($input: TopUpInput!) { topUp(input: $input) { __typename } ...T }
                      fragment T on Mutation { again: topUp(input: $input) { __typename } }"""
    for document in (double, via_fragment):
        answer = await gw.query(document, topup())
        assert answer.get("data") is None
        assert "At most one topUp" in answer["errors"][0]["message"]
    assert posts(sim) == 0


async def test_the_journal_and_the_balance_follow_top_ups(
    sim: Simulator, clock: FakeClock, gw: GatewayClient
) -> None:
    balance = '{ account(id: "ourvoice-sn") { balance { ... on AccountBalance { balances { total { amount } } } } } }'
    history = """{ account(id: "ourvoice-sn") { transactions { ... on TransactionConnection {
                   edges { node { reference status amount { amount } direction } } } } } }"""
    before = (await gw.query(balance))["data"]["account"]["balance"]["balances"][0]
    await send(gw, "k-1")
    clock.advance(1)
    ourvoice_fake(sim).topup_faults["ourvoice-sn"] = "503-after-commit"
    await send(gw, "k-2", paymentReference="PAY-2", amount="700")
    after = (await gw.query(balance))["data"]["account"]["balance"]["balances"][0]
    edges = (await gw.query(history))["data"]["account"]["transactions"]["edges"]
    assert (before["total"]["amount"], after["total"]["amount"]) == ("50000", "55700")
    assert [(e["node"]["status"], e["node"]["amount"]["amount"]) for e in edges] == [
        ("PENDING", "700"),
        ("SUCCEEDED", "5000"),
    ]
    assert {e["node"]["direction"] for e in edges} == {"CREDIT"}


def test_an_operator_resolves_a_pending_top_up(
    sim: Simulator,
    sim_transport: httpx.AsyncBaseTransport,
    clock: FakeClock,
    tmp_path: Any,
    capsys: pytest.CaptureFixture[str],
) -> None:
    settings = demo_settings()

    async def top_up() -> dict[str, Any]:
        async with running_gateway(settings, sim_transport, clock) as gw:
            return await send(gw)

    ourvoice_fake(sim).topup_faults["ourvoice-sn"] = "503-after-commit"
    assert asyncio.run(top_up())["__typename"] == "TopUpPending"
    config = tmp_path / "ops.toml"
    config.write_text(_config_with(settings.idempotency.url))
    assert cli_main(["topups", "list", "--pending", "--config", str(config)]) == 0
    assert "k-1" in capsys.readouterr().out

    def resolve(outcome: str) -> int:
        return cli_main(
            [
                "topups",
                "resolve",
                "k-1",
                "--client",
                "dev:anonymous",
                "--as",
                outcome,
                "--by",
                "alice",
                "--config",
                str(config),
            ]
        )

    assert resolve("succeeded") == 0
    assert resolve("failed") == 1  # already resolved: a late verdict changes nothing
    answer = asyncio.run(top_up())
    assert answer["__typename"] == "TopUpSucceeded" and answer["replayed"] is True
    assert posts(sim) == 1


def _config_with(url: str) -> str:
    from tests.helpers import demo_text

    text = demo_text()
    return text.replace('url = "sqlite:///.data/demo-topups.db"', f'url = "{url}"')


class FlakyJournal:
    """A real SQLite journal whose chosen operations fail, as a full disk or a lost
    database connection would make them."""

    def __init__(self, path: str, failing: set[str]) -> None:
        from gateway.services.journal import Sqlite, SqlJournal

        self.inner = SqlJournal(Sqlite(path))
        self.failing = failing

    def __getattr__(self, name: str) -> Any:
        operation = getattr(self.inner, name)
        if name not in self.failing:
            return operation

        async def broken(*args: Any, **kwargs: Any) -> Any:
            raise OSError(f"journal {name} failed")

        return broken


@pytest.mark.parametrize(
    ("failing", "answer", "credited"), [({"begin"}, "Rejected", 0), ({"finish"}, "Pending", 1)]
)
async def test_a_failing_journal_never_costs_money(
    failing: set[str],
    answer: str,
    credited: int,
    sim: Simulator,
    http: Any,
    clock: FakeClock,
    tmp_path: Any,
) -> None:
    from gateway.providers.ourvoice import OurVoice
    from gateway.services.topups import TopUpRequest, TopUpService
    from tests.helpers import make_channel

    account = demo_settings().accounts["ourvoice-sn"]
    journal = FlakyJournal(str(tmp_path / "j.db"), failing)
    invalidated: list[str] = []

    async def invalidate(account_id: str) -> None:
        invalidated.append(account_id)

    service = TopUpService(
        {account.id: account},
        {account.id: OurVoice(account, make_channel(account, http, clock), clock)},
        journal,
        invalidate,
        clock,
        0.1,
        30,
    )
    request = TopUpRequest(account.id, Decimal("5000"), None, "MTN MOMO", "PAY-1", "k-1")
    outcome = await service.top_up("ops", request)
    assert type(outcome).__name__ == answer
    if answer == "Rejected":
        assert outcome.retryable is True  # type: ignore[union-attr]
    assert credits(sim) == credited
    journal.failing.clear()
    clock.advance(60)  # the lease runs out: an unrecorded outcome reads as pending
    again = await service.top_up("ops", request)
    assert credits(sim) == credited + (1 if answer == "Rejected" else 0)
    assert type(again).__name__ == ("Succeeded" if answer == "Rejected" else "Pending")
    await journal.inner.close()
