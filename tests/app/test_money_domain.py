"""The money domain: an absurd upstream number costs that account (UPSTREAM_BAD_RESPONSE)
and nothing else — never the whole report, never a response larger than what came in."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import httpx
import pytest

from gateway.cache.codec import decode_balances, encode_balances
from gateway.domain import (
    AccountBalance,
    AccountInfo,
    Asset,
    AssetKind,
    Balance,
    Money,
    ProviderKind,
    fits,
    totals,
)
from tests.app.test_graphql import BALANCES, by_id
from tests.helpers import FakeClock, demo_settings, running_gateway

OURVOICE = "/ourvoice/v1/current/balance"
MAGMA = "/magma/v1/misc/balance"
MUDA = "/muda/v1/payment/balance"
PAYMOB = "/paymob/api/v1/balance/"


def ourvoice(balance: str) -> bytes:
    return b'{"data": {"success": true, "data": {"balance": %s}}}' % balance.encode()


def magma(balance: str, available: str = "0") -> bytes:
    item = '{"code": "BJ", "currency": "XOF", "balance": %s, "balance_available": %s}'
    return ('{"code": 200, "data": [%s]}' % (item % (balance, available))).encode()


def muda(balance: str) -> bytes:
    item = {"asset_code": "UGX", "asset_issuer": "i", "currency": "UGX", "balance": balance}
    return json.dumps({"status": 200, "message": "ok", "data": [item]}).encode()


def paymob(available: str) -> bytes:
    return b'{"amount_available": %s, "available_commission": 1.5}' % available.encode()


class Bodies(httpx.AsyncBaseTransport):
    """Crafted bodies for some upstream paths; every other call reaches the simulator."""

    def __init__(self, inner: httpx.AsyncBaseTransport, bodies: dict[str, bytes]) -> None:
        self.inner, self.bodies = inner, bodies

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = self.bodies.get(request.url.path)
        if body is None:
            return await self.inner.handle_async_request(request)
        return httpx.Response(200, content=body, headers={"content-type": "application/json"})


async def report(
    bodies: dict[str, bytes], transport: httpx.AsyncBaseTransport, clock: FakeClock
) -> tuple[dict[str, Any], int]:
    async with running_gateway(demo_settings(), Bodies(transport, bodies), clock) as gateway:
        response = await gateway.post(BALANCES)
    assert response.status_code == 200
    return response.json(), len(response.content)


@pytest.mark.parametrize(
    ("bodies", "failed"),
    [
        # Two XOF prepaid balances of 9e999999: their sum overflowed decimal's default
        # context and `totals` blanked the whole report (data: null).
        ({OURVOICE: ourvoice("9e999999")}, {"ourvoice-sn", "ourvoice-ci"}),
        ({MAGMA: magma("1e999999")}, {"magma"}),  # was a million-digit string
        ({MAGMA: magma("1000000000000000")}, {"magma"}),  # 16 digits before the point
        ({MAGMA: magma("1.123456789")}, {"magma"}),  # 9 after
        ({MAGMA: magma("0", "1e-999999")}, {"magma"}),
        ({MUDA: muda("1E+1000000")}, {"muda-ug"}),
        ({MUDA: muda("0.000000000000000000000000001")}, {"muda-ug"}),
        ({PAYMOB: paymob("-1e30")}, {"paymob-eg"}),
    ],
)
async def test_an_amount_outside_the_domain_costs_only_its_account(
    bodies: dict[str, bytes],
    failed: set[str],
    sim_transport: httpx.AsyncBaseTransport,
    clock: FakeClock,
) -> None:
    answer, size = await report(bodies, sim_transport, clock)
    results = by_id(answer["data"]["balances"])
    codes = {k: r.get("code") for k, r in results.items() if r["__typename"] == "ProviderFailure"}
    assert codes == dict.fromkeys(failed, "UPSTREAM_BAD_RESPONSE")
    assert len(results) == 5 and answer["data"]["balances"]["totals"]
    assert "errors" not in answer
    assert size < 16_000  # the whole five-account report: no amount grows without bound


@pytest.mark.parametrize(
    ("bodies", "account", "amount"),
    [
        ({MAGMA: magma("-250.5")}, "magma", "-250.5"),  # an overdrawn payout float: shown
        ({PAYMOB: paymob("-12.25")}, "paymob-eg", "-12.25"),  # refunds can overdraw: shown
        ({MAGMA: magma("1E+3")}, "magma", "1000"),  # exponent notation, plain digits out
        ({MAGMA: magma("999999999999999.99999999")}, "magma", "999999999999999.99999999"),
    ],
)
async def test_amounts_inside_the_domain_are_shown_as_they_are(
    bodies: dict[str, bytes],
    account: str,
    amount: str,
    sim_transport: httpx.AsyncBaseTransport,
    clock: FakeClock,
) -> None:
    answer, _ = await report(bodies, sim_transport, clock)
    result = by_id(answer["data"]["balances"])[account]
    assert result["__typename"] == "AccountBalance"
    assert result["balances"][0]["total"]["amount"] == amount


@pytest.mark.parametrize(
    ("bodies", "account"),
    [({MUDA: muda("-5")}, "muda-ug"), ({OURVOICE: ourvoice("-5")}, "ourvoice-sn")],
)
async def test_a_negative_balance_where_the_provider_has_none_is_a_bad_response(
    bodies: dict[str, bytes],
    account: str,
    sim_transport: httpx.AsyncBaseTransport,
    clock: FakeClock,
) -> None:
    answer, _ = await report(bodies, sim_transport, clock)
    assert by_id(answer["data"]["balances"])[account]["code"] == "UPSTREAM_BAD_RESPONSE"


def balance(amount: str, currency: str = "XOF") -> Balance:
    money = Money(Decimal(amount), currency)
    return Balance(f"x:{amount}", Asset(currency, currency, AssetKind.CASH), money, money)


def test_totals_never_raise_a_sum_leaving_the_domain_drops_only_that_total() -> None:
    info = AccountInfo("a", ProviderKind("magma_onepay"), "a", ())
    biggest = "9" * 24
    results: list[Any] = [
        AccountBalance(info, (balance(biggest), balance("1", "EGP")), fetched_at=None),  # type: ignore[arg-type]
        AccountBalance(info, (balance(biggest), balance("2.5", "EGP")), fetched_at=None),  # type: ignore[arg-type]
    ]
    (egp,) = totals(results)
    assert (egp.currency, egp.total.amount) == ("EGP", Decimal("3.5"))


def test_totals_leave_out_a_kind_whose_available_amount_is_in_another_currency() -> None:
    info = AccountInfo("a", ProviderKind("magma_onepay"), "a", ())
    odd = Balance(
        "x:odd",
        Asset("XOF", "XOF", AssetKind.CASH),
        Money(Decimal("5"), "XOF"),
        Money(Decimal("5"), "EGP"),  # no provider does this; if one did, no total mixes it
    )
    results: list[Any] = [
        AccountBalance(info, (balance("1"), odd, balance("1", "EGP")), fetched_at=None),  # type: ignore[arg-type]
        AccountBalance(info, (balance("2"),), fetched_at=None),  # type: ignore[arg-type]
    ]
    (egp,) = totals(results)
    assert (egp.currency, egp.total.amount, egp.available.amount) == ("EGP", Decimal(1), Decimal(1))


def test_the_domain_bounds() -> None:
    assert fits(Decimal("999999999999999.99999999"))
    assert not fits(Decimal("1000000000000000"))
    assert not fits(Decimal("0.123456789"))
    assert not fits(Decimal("NaN")) and not fits(Decimal("Infinity"))
    with pytest.raises(ValueError, match="money domain"):
        Money(Decimal("1e25"), "XOF")


def test_a_cached_amount_outside_the_domain_is_a_miss() -> None:
    text = encode_balances((balance("5"),)).replace('"5"', '"1e999999"')
    assert decode_balances(text) is None
