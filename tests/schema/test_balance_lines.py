"""`BalanceReport.balances(atOrBelow:, orderBy:)`: every balance of the accounts that
answered, with its account — those at a level or a worse one, and the soonest to run dry
first (those without a runway last) — what the MCP tools `AccountsBelowLevel` and
`RunwaySoonestFirst` answer."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from gateway.simulator import Simulator
from tests.helpers import FakeClock, GatewayClient, ourvoice_fake

LINES = """query($level: BalanceLevel, $order: BalanceOrder) { balances {
  balances(atOrBelow: $level, orderBy: $order) {
    account { id } stale balance { id level runway { zeroAt } } } } }"""


async def lines(gw: GatewayClient, **variables: str) -> list[Any]:
    answer = await gw.query(LINES, variables)
    found: list[Any] = answer["data"]["balances"]["balances"]
    return found


async def test_every_balance_with_its_account_in_the_order_of_results(
    gw: GatewayClient,
) -> None:
    found = await lines(gw)
    accounts = [line["account"]["id"] for line in found]
    assert accounts == sorted(
        accounts, key=["ourvoice-sn", "ourvoice-ci", "magma", "muda-ug", "paymob-eg"].index
    )
    assert len(found) > 5 and all(line["stale"] is False for line in found)


async def test_at_or_below_a_level_keeps_that_level_and_worse(
    sim: Simulator, clock: FakeClock, gw: GatewayClient
) -> None:
    warning = await lines(gw, level="WARNING")
    assert [(x["account"], x["balance"]["level"]) for x in warning] == [
        ({"id": "ourvoice-sn"}, "WARNING")
    ]
    assert await lines(gw, level="CRITICAL") == []
    assert len(await lines(gw, level="OK")) == 1  # only ourvoice-sn has thresholds at all
    ourvoice_fake(sim).balances["ourvoice-sn"] = Decimal(10_000)  # below critical (20,000)
    clock.advance(3600)  # its cached answer no longer fresh
    (critical,) = await lines(gw, level="CRITICAL")
    assert critical["balance"]["level"] == "CRITICAL"


async def test_by_runway_the_soonest_first_and_those_without_one_last(
    sim: Simulator, clock: FakeClock, gw: GatewayClient
) -> None:
    recorder = gw.app.state.recorder
    balances = ourvoice_fake(sim).balances
    # Our Voice CI falls 4x as fast as Senegal, from about the same amount; nothing else falls.
    sn, ci = Decimal(50_000), Decimal(48_000)
    for _ in range(4):
        balances["ourvoice-sn"], balances["ourvoice-ci"] = sn, ci
        await gw.query("{ balances { complete } }")
        await recorder.flush()
        sn, ci = sn - 500, ci - 2_000
        clock.advance(3600)
    found = await lines(gw, order="RUNWAY")
    runways = [line["balance"]["runway"] for line in found]
    ids = [line["account"]["id"] for line in found]
    assert ids[:2] == ["ourvoice-ci", "ourvoice-sn"]
    zero = [datetime.fromisoformat(r["zeroAt"]) for r in runways[:2]]
    assert zero[0] < zero[1]
    assert runways[2:] == [None] * (len(found) - 2)  # not falling: no runway, last
    assert ids[2:] == [i for i in ids if i not in ("ourvoice-ci", "ourvoice-sn")]
