"""Muda quirks: token exchange, expiry, one refresh for many callers, body status wins."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from gateway.domain import AssetKind
from gateway.errors import ErrorCode, UpstreamContext, UpstreamError
from gateway.providers.base import join_url
from gateway.providers.muda import Muda, parse_balances
from gateway.simulator import Simulator
from gateway.upstream.client import UpstreamClient, UpstreamResponse
from tests.helpers import (
    DelayTransport,
    FakeClock,
    code_raised,
    demo_accounts,
    make_channel,
    muda_fake,
)

ACCOUNT = demo_accounts()["muda-ug"]
CTX = UpstreamContext("muda", "muda-ug")
TENANT = "muda-ug"


def muda(http: UpstreamClient, clock: FakeClock) -> Muda:
    return Muda(ACCOUNT, make_channel(ACCOUNT, http, clock), clock)


async def test_the_token_is_exchanged_once_and_reused(
    http: UpstreamClient, clock: FakeClock, sim: Simulator
) -> None:
    adapter = muda(http, clock)
    for _ in range(3):
        await adapter.fetch_balances()
    assert sim.state.calls_to(TENANT, "token") == 1
    assert sim.state.calls_to(TENANT, "balance") == 3


async def test_the_token_is_refreshed_shortly_before_it_expires(
    http: UpstreamClient, clock: FakeClock, sim: Simulator
) -> None:
    adapter = muda(http, clock)
    await adapter.fetch_balances()
    clock.advance(7200 - 30)  # still valid upstream, but inside the refresh margin
    await adapter.fetch_balances()
    assert sim.state.calls_to(TENANT, "token") == 2
    assert sim.state.calls_to("anonymous", "balance") == 0  # never sent an expired token


async def test_twenty_concurrent_callers_share_one_exchange(
    http: UpstreamClient, clock: FakeClock, sim: Simulator
) -> None:
    adapter = muda(http, clock)
    await asyncio.gather(*(adapter.fetch_balances() for _ in range(20)))
    assert sim.state.calls_to(TENANT, "token") == 1


async def test_a_401_refreshes_once_for_twenty_concurrent_callers(
    http: UpstreamClient, clock: FakeClock, sim: Simulator, sim_transport: httpx.AsyncBaseTransport
) -> None:
    adapter = muda(http, clock)
    await adapter.fetch_balances()
    muda_fake(sim).tokens.revoke(TENANT)  # upstream forgot every token, ours included
    slow = UpstreamClient(DelayTransport(sim_transport), wall_clock=clock)  # all 20 in flight
    adapter.channel = make_channel(ACCOUNT, slow, clock)
    results = await asyncio.gather(*(adapter.fetch_balances() for _ in range(20)))
    await slow.aclose()
    assert all(len(r) == 6 for r in results)
    assert sim.state.calls_to("anonymous", "balance") == 20  # all 20 sent the revoked token
    assert sim.state.calls_to(TENANT, "token") == 2  # the first exchange, and one refresh


async def test_a_token_refused_again_after_refresh_is_upstream_unauthorized(
    http: UpstreamClient, clock: FakeClock, sim: Simulator
) -> None:
    adapter = muda(http, clock)
    await adapter.fetch_balances()
    muda_fake(sim).tokens.refuse_all = True  # upstream issues tokens it then refuses
    with pytest.raises(UpstreamError) as raised:
        await adapter.fetch_balances()
    assert raised.value.code is ErrorCode.UPSTREAM_UNAUTHORIZED
    assert sim.state.calls_to(TENANT, "token") == 2  # one refresh, never a loop
    assert sim.state.calls_to("anonymous", "balance") == 2


def response(body: object, status: int = 200) -> UpstreamResponse:
    return UpstreamResponse(status, {}, json.dumps(body).encode())


def test_http_200_carrying_a_failed_balance_fetch_is_unavailable() -> None:
    failed = response({"status": 400, "message": "Failed to fetch balances", "data": None})
    assert code_raised(parse_balances, failed, ACCOUNT, CTX) is ErrorCode.UPSTREAM_UNAVAILABLE


def test_http_200_carrying_404_is_rejected() -> None:
    rejected = response({"status": 404, "message": "x", "data": None})
    assert code_raised(parse_balances, rejected, ACCOUNT, CTX) is ErrorCode.UPSTREAM_REJECTED


def row(**changes: object) -> dict[str, object]:
    base: dict[str, object] = {
        "id": 1,
        "asset_code": "cUGX",
        "asset_issuer": "issuer_ugx",
        "currency": "UGX",
        "balance": "650.0000000",
    }
    return {**base, **changes}


def test_c_assets_are_collateral_keyed_by_code_and_issuer() -> None:
    ok = response({"status": 200, "message": "ok", "data": [row(), row(id=2, asset_code="UGX")]})
    collateral, cash = parse_balances(ok, ACCOUNT, CTX)
    assert (collateral.id, collateral.asset.kind) == (
        "muda-ug:cUGX:issuer_ugx",
        AssetKind.COLLATERAL,
    )
    assert (cash.id, cash.asset.kind) == ("muda-ug:UGX:issuer_ugx", AssetKind.CASH)
    assert str(collateral.total.amount) == "650.0000000"


@pytest.mark.parametrize(
    "bad",
    [
        row(balance=650.0),  # a float where a string belongs
        row(balance="NaN"),
        row(balance="Infinity"),
        row(balance=" 650"),
        row(balance="six"),
        row(currency="ZZZ"),
        row(asset_code="cKES"),  # does not match its currency
        row(asset_code=None),
    ],
)
def test_bad_rows_are_bad_responses(bad: dict[str, object]) -> None:
    body = response({"status": 200, "message": "ok", "data": [bad]})
    assert code_raised(parse_balances, body, ACCOUNT, CTX) is ErrorCode.UPSTREAM_BAD_RESPONSE


@pytest.mark.parametrize(
    ("base", "expected"),
    [
        ("https://api.muda.tech", "https://api.muda.tech/v1/payment/balance"),
        ("https://api.muda.tech/", "https://api.muda.tech/v1/payment/balance"),
        ("https://api.muda.tech/v1", "https://api.muda.tech/v1/payment/balance"),
        ("https://gw.example/muda/v1/", "https://gw.example/muda/v1/payment/balance"),
    ],
)
def test_a_base_url_ending_in_v1_does_not_double_it(base: str, expected: str) -> None:
    assert join_url(base, "/v1/payment/balance") == expected
