"""The daily close's pieces a month of the simulator does not reach: top-ups matched to a
provider's rows, a DST day's length, the CSV's row for an account that could not be read,
the report route's refusals, the simulator's books over HTTP and the cron command."""

from __future__ import annotations

import asyncio
import csv
import io
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest

from gateway.cli import main as cli_main
from gateway.domain import (
    Asset,
    AssetKind,
    Direction,
    Money,
    StatementCoverage,
    Transaction,
    TransactionStatus,
)
from gateway.services.daily_close import (
    CSV_COLUMNS,
    AccountClose,
    BalanceRef,
    CloseStatus,
    FindingKind,
    MatchStatus,
    Reading,
    close_balance,
    csv_rows,
    day_of,
    match_topups,
)
from gateway.simulator import Simulator
from tests.helpers import (
    FakeClock,
    GatewayClient,
    client,
    demo_settings,
    production,
    running_gateway,
    serving,
)
from tests.system.processes import demo_config

CAIRO = ZoneInfo("Africa/Cairo")
ZONE_UTC = ZoneInfo("UTC")
EGP = BalanceRef("p:available:EGP", "p", "EGP", AssetKind.CASH, "EGP", "EG")


def row(
    ref: str,
    amount: str,
    at: str,
    status: TransactionStatus,
    kind: str = "card",
    direction: Direction = Direction.CREDIT,
    fee: str | None = None,
) -> Transaction:
    return Transaction.of(
        "p",
        ref,
        reference=ref,
        type=kind,
        status=status,
        raw_status=status.value,
        amount=Money(Decimal(amount), "EGP"),
        created_at=datetime.fromisoformat(at),
        direction=direction,
        asset=Asset("EGP", "EGP", AssetKind.CASH),
        fee=Money(Decimal(fee), "EGP") if fee is not None else None,
    )


def reading(at: str, amount: str) -> Reading:
    return Reading(datetime.fromisoformat(at), Decimal(amount))


DONE = TransactionStatus.SUCCEEDED
AFTER = datetime(2025, 5, 5, tzinfo=UTC)  # the days below are over


def test_one_direction_that_explains_the_whole_day_is_reconciled() -> None:
    """RECONCILED is opening + the statement's movements = closing, whatever the statement
    covers; BALANCE_DELTA_ONLY is a difference in the direction it does not list."""
    day = day_of(date(2025, 5, 1), ZONE_UTC)
    payout = row("P", "100", "2025-05-01T10:00:00+00:00", DONE, "payout", Direction.DEBIT)
    edges = [reading("2025-05-01T00:00:00+00:00", "1000")]
    explained = [*edges, reading("2025-05-02T00:00:00+00:00", "900")]
    collected = [*edges, reading("2025-05-02T00:00:00+00:00", "950")]
    debits = StatementCoverage.DEBITS
    assert close_balance(EGP, day, explained, [payout], debits, AFTER).status is (
        CloseStatus.RECONCILED
    )
    rose = close_balance(EGP, day, collected, [payout], debits, AFTER)
    assert rose.status is CloseStatus.BALANCE_DELTA_ONLY and rose.unlisted_credits == 50


def test_a_fee_netted_is_tried_before_a_reversal_whatever_the_rows_order() -> None:
    day = day_of(date(2025, 5, 1), ZONE_UTC)
    push = row("A", "10", "2025-05-01T09:00:00+00:00", DONE, "PUSH", Direction.DEBIT)
    pull = row("B", "1000", "2025-05-01T10:00:00+00:00", DONE, "PULL", fee="10")
    readings = [reading("2025-05-01T00:00:00+00:00", "1000")]
    readings.append(reading("2025-05-02T00:00:00+00:00", "1990"))
    got = close_balance(EGP, day, readings, [push, pull], StatementCoverage.BOTH, AFTER)
    assert [(f.kind, f.row_id) for f in got.findings] == [(FindingKind.FEE_NETTED, "p:B")]


def test_a_reading_at_midnight_closes_the_day_it_ends_for_top_ups_too() -> None:
    """The rise shown by the 00:00 reading is the day before's: a top-up at 23:50 it
    credits is MATCHED there, and an unclaimed rise is that day's unjournaled credit."""
    day, after = day_of(date(2025, 6, 1), ZONE_UTC), day_of(date(2025, 6, 2), ZONE_UTC)
    readings = [
        reading("2025-06-01T23:00:00+00:00", "1000"),
        reading("2025-06-02T00:00:00+00:00", "1500"),
    ]
    top_up = row("T", "500", "2025-06-01T23:50:00+00:00", DONE, "top_up")
    matches, _ = match_topups(EGP, day, [top_up], None, readings, frozenset(), AFTER)
    assert [m.status for m in matches] == [MatchStatus.MATCHED]
    _, loose = match_topups(EGP, day, [], None, readings, frozenset(), AFTER)
    assert [c.amount for c in loose] == [Decimal(500)]
    assert match_topups(EGP, after, [], None, readings, frozenset(), AFTER)[1] == ()


def test_a_funding_row_listed_twice_is_one_credit_with_no_journal_entry() -> None:
    day = day_of(date(2025, 5, 1), ZONE_UTC)
    deposit = row("D", "50", "2025-05-01T10:00:00+00:00", DONE, "card")
    _, loose = match_topups(EGP, day, [], [deposit, deposit], [], frozenset({"card"}), AFTER)
    assert [c.row_id for c in loose] == ["p:D"]


def test_a_dst_day_is_23_hours_in_cairo() -> None:
    day = day_of(date(2024, 4, 26), CAIRO)  # the clocks jumped at midnight
    assert day.start == datetime(2024, 4, 25, 22, tzinfo=UTC)
    assert (day.end - day.start).total_seconds() == 23 * 3600


def test_top_ups_matched_to_the_providers_rows() -> None:
    day = day_of(date(2025, 5, 1), CAIRO)
    done = TransactionStatus.SUCCEEDED
    entries = [
        row("A", "100.00", "2025-05-01T08:00:00+00:00", done, "top_up"),
        row("B", "200.00", "2025-05-01T09:00:00+00:00", done, "top_up"),
        row("C", "300.00", "2025-05-01T10:00:00+00:00", TransactionStatus.PENDING, "top_up"),
        row("D", "400.00", "2025-05-01T11:00:00+00:00", TransactionStatus.FAILED, "top_up"),
    ]
    rows = [
        row("A", "100.00", "2025-05-01T08:00:05+00:00", done),
        row("B", "200.00", "2025-05-02T09:00:00+00:00", done),  # the next Cairo day
        row("X", "50.00", "2025-05-01T12:00:00+00:00", done),  # nobody's top-up
    ]
    now = datetime(2025, 5, 5, tzinfo=UTC)
    matches, loose = match_topups(EGP, day, entries, rows, [], frozenset({"card"}), now)
    assert [(m.reference, m.status) for m in matches] == [
        ("A", MatchStatus.MATCHED),
        ("B", MatchStatus.LATE),
        ("C", MatchStatus.UNMATCHED),
    ]
    assert [(c.row_id, c.amount) for c in loose] == [("p:X", Decimal("50.00"))]


def test_an_account_that_could_not_be_read_is_one_incomplete_row() -> None:
    problem = AccountClose("magma", date(2025, 5, 1), "UTC", (), (), (), "balances: UPSTREAM")
    header, line = csv_rows([problem])
    assert header == list(CSV_COLUMNS)
    said = dict(zip(header, line, strict=True))
    assert said["status"] == "INCOMPLETE" and said["missing"] == "balances: UPSTREAM"
    assert said["account"] == "magma" and said["balance"] == ""


@pytest.mark.parametrize(
    "day", ["yesterday", "20240603", "2024-W23-1", "2025-02-30", "9999-12-31", "0001-01-01", ""]
)
async def test_the_report_refuses_anything_but_a_day_from_1970_to_2099(
    gw: GatewayClient, day: str
) -> None:
    bad = await gw.http.get("/reports/daily-close.csv", params={"date": day})
    assert bad.status_code == 400 and "`date`" in bad.text and "VALIDATION" in bad.text
    asked = await gw.query("query($d: Date!) { dailyClose(date: $d) { accountId } }", {"d": day})
    assert asked["errors"][0]["extensions"]["code"] == "VALIDATION", asked


async def test_the_report_shows_a_key_its_own_accounts_only(
    sim_transport: httpx.AsyncBaseTransport, clock: FakeClock
) -> None:
    """Without `accountIds`, a key limited to some accounts gets theirs (as in GraphQL),
    and an account it may not see is unknown to it."""
    muda = client("muda", "muda-key-123456789012", ("transactions:read",), ("muda-ug",))
    settings = production(demo_settings(), muda)
    async with running_gateway(settings, sim_transport, clock, key="muda-key-123456789012") as gw:
        mine = await gw.http.get("/reports/daily-close.csv", params={"date": "2024-06-03"})
        other = await gw.http.get(
            "/reports/daily-close.csv", params={"date": "2024-06-03", "accountIds": "magma"}
        )
    assert mine.status_code == 200
    accounts = {r["account"] for r in csv.DictReader(io.StringIO(mine.text))}
    assert accounts == {"muda-ug"}
    assert other.status_code == 400 and "'magma'" in other.text and "ourvoice" not in other.text


async def test_the_report_refuses_an_unknown_account(gw: GatewayClient) -> None:
    unknown = await gw.http.get(
        "/reports/daily-close.csv", params={"date": "2024-06-03", "accountIds": "nope"}
    )
    assert unknown.status_code == 400 and "'nope'" in unknown.text


async def test_a_movement_posted_to_the_books_moves_the_balance_and_is_listed(
    sim: Simulator, gw: GatewayClient
) -> None:
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=sim.app), base_url="http://s")
    async with client:
        posted = await client.post(
            "/_sim/books/muda-ug",
            json={
                "id": "m-1",
                "balance": "UGX",
                "kind": "PULL",
                "credit": True,
                "amount": "1000",
                "fee": "100",
            },
        )
        assert posted.status_code == 201
        wrongs: list[object] = [
            {"id": "m"},
            {"id": "m", "balance": "UGX", "kind": "PULL", "credit": True, "amount": "-1"},
            [],
            {"what": 1},
        ]
        for wrong in wrongs:
            assert (await client.post("/_sim/books/muda-ug", json=wrong)).status_code == 400
        assert (await client.post("/_sim/books/nobody", json={})).status_code == 404
    query = (
        '{ transactions(accountId: "muda-ug", first: 1) '
        "{ ... on TransactionConnection { edges { node { providerId } } } } }"
    )
    edges = (await gw.query(query))["data"]["transactions"]["edges"]
    assert edges[0]["node"]["providerId"] == "m-1"


def test_the_cron_command_writes_the_csv(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from gateway.simulator import create_simulator

    # The demo config with a journal of its own: the checkout's (`deploy/.data/`) is what
    # `make run` deletes and serves, which another test process may be doing meanwhile.
    config = demo_config(tmp_path)

    async def run() -> int:
        async with serving(create_simulator().app) as url:
            port = url.rsplit(":", 1)[1]
            return await asyncio.to_thread(
                cli_main,
                [
                    "report",
                    "daily-close",
                    "--config",
                    str(config),
                    "--date",
                    "2024-06-03",
                    "--accounts",
                    "muda-ug",
                    "--simulator-port",
                    port,
                    "--check",
                ],
            )

    assert asyncio.run(run()) == 0
    rows = list(csv.reader(io.StringIO(capsys.readouterr().out)))
    assert rows[0] == list(CSV_COLUMNS)
    assert {r[6] for r in rows[1:]} == {"INCOMPLETE"}
