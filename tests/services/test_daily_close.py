"""The daily close's pieces a month of the simulator does not reach: top-ups matched to a
provider's rows, a DST day's length, the CSV's row for an account that could not be read,
the report route's refusals, the simulator's books over HTTP and the cron command."""

from __future__ import annotations

import asyncio
import csv
import io
from datetime import UTC, date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import httpx
import pytest

from gateway.cli import main as cli_main
from gateway.domain import Asset, AssetKind, Direction, Money, Transaction, TransactionStatus
from gateway.services.daily_close import (
    CSV_COLUMNS,
    AccountClose,
    BalanceRef,
    MatchStatus,
    csv_rows,
    day_of,
    match_topups,
)
from gateway.simulator import Simulator
from tests.helpers import DEMO_CONFIG, GatewayClient, serving

CAIRO = ZoneInfo("Africa/Cairo")
EGP = BalanceRef("p:available:EGP", "p", "EGP", AssetKind.CASH, "EGP", "EG")


def row(
    ref: str, amount: str, at: str, status: TransactionStatus, kind: str = "card"
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
        direction=Direction.CREDIT,
        asset=Asset("EGP", "EGP", AssetKind.CASH),
    )


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


async def test_the_report_refuses_a_bad_date_and_an_unknown_account(gw: GatewayClient) -> None:
    bad = await gw.http.get("/reports/daily-close.csv", params={"date": "yesterday"})
    assert bad.status_code == 400 and "date" in bad.text
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


def test_the_cron_command_writes_the_csv(capsys: pytest.CaptureFixture[str]) -> None:
    from gateway.simulator import create_simulator

    async def run() -> int:
        async with serving(create_simulator().app) as url:
            port = url.rsplit(":", 1)[1]
            return await asyncio.to_thread(
                cli_main,
                [
                    "report",
                    "daily-close",
                    "--config",
                    str(DEMO_CONFIG),
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
