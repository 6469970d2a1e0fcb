"""Magma OnePay quirks: zone-less timestamps, RDC, bare arrays, `code` in the envelope."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import httpx
import pytest

from gateway.errors import ErrorCode, UpstreamContext
from gateway.providers.magma_onepay import MagmaOnePay, parse_balances
from gateway.upstream.client import UpstreamClient
from tests.helpers import FakeClock, code_raised, demo_accounts, make_channel

ACCOUNT = demo_accounts()["magma"]
CTX = UpstreamContext("magma_onepay", "magma")


def item(**changes: object) -> dict[str, object]:
    base: dict[str, object] = {
        "name": "DR Congo",
        "prefix": "+243",
        "code": "RDC",
        "currency": "CDF",
        "balance": 10.5,
        "balance_available": 10.25,
        "last_updated_at": "2024-06-04 00:43:26",
    }
    return {**base, **changes}


def envelope(*items: object, code: int = 200) -> bytes:
    return json.dumps({"code": code, "message": "OK", "data": list(items)}).encode()


def test_rdc_becomes_cd_and_keeps_its_raw_code() -> None:
    (balance,) = parse_balances(envelope(item()), ACCOUNT, CTX)
    assert balance.id == "magma:CD:CDF"
    assert balance.country is not None
    assert (balance.country.code, balance.country.raw_code) == ("CD", "RDC")
    assert balance.country.dial_prefix == "+243"


def test_zoneless_timestamps_are_utc_by_default() -> None:
    (balance,) = parse_balances(envelope(item()), ACCOUNT, CTX)
    assert balance.updated_at == datetime(2024, 6, 4, 0, 43, 26, tzinfo=UTC)


def test_zoneless_timestamps_take_the_configured_zone() -> None:
    cairo = dataclasses.replace(ACCOUNT, timezone=ZoneInfo("Africa/Lagos"))  # UTC+1
    (balance,) = parse_balances(envelope(item()), cairo, CTX)
    assert balance.updated_at == datetime(2024, 6, 3, 23, 43, 26, tzinfo=UTC)


def test_floats_are_read_exactly_and_pending_is_derived() -> None:
    raw = envelope(item()).replace(b"10.5,", b"10.10000001,")
    (balance,) = parse_balances(raw, ACCOUNT, CTX)
    assert balance.total.amount == Decimal("10.10000001")  # a float would not keep it
    assert balance.pending is not None
    assert balance.pending.amount == Decimal("-0.14999999")


def test_a_bare_array_is_accepted() -> None:
    raw = json.dumps([item(code="BJ", currency="XOF", balance=0, balance_available=0)]).encode()
    (balance,) = parse_balances(raw, ACCOUNT, CTX)
    assert balance.id == "magma:BJ:XOF"


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        (envelope(code=500), ErrorCode.UPSTREAM_UNAVAILABLE),
        (envelope(code=401), ErrorCode.UPSTREAM_UNAUTHORIZED),
        (envelope(item(currency="ZZZ")), ErrorCode.UPSTREAM_BAD_RESPONSE),
        (envelope(item(balance="10.5")), ErrorCode.UPSTREAM_BAD_RESPONSE),
        (envelope(item(balance=True)), ErrorCode.UPSTREAM_BAD_RESPONSE),
        (envelope(item(code="Congo")), ErrorCode.UPSTREAM_BAD_RESPONSE),
        (envelope(item(last_updated_at="yesterday")), ErrorCode.UPSTREAM_BAD_RESPONSE),
        (envelope(item(), item()), ErrorCode.UPSTREAM_BAD_RESPONSE),
        (envelope(item()).replace(b"10.5", b"Infinity"), ErrorCode.UPSTREAM_BAD_RESPONSE),
    ],
)
def test_failures_and_bad_items(raw: bytes, code: ErrorCode) -> None:
    assert code_raised(parse_balances, raw, ACCOUNT, CTX) is code


async def test_secret_header_is_sent_only_when_configured(clock: FakeClock) -> None:
    seen: list[httpx.Headers] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers)
        return httpx.Response(200, content=envelope(item()))

    http = UpstreamClient(httpx.MockTransport(handler), wall_clock=clock)
    await MagmaOnePay(ACCOUNT, make_channel(ACCOUNT, http, clock), clock).fetch_balances()
    no_secret = dataclasses.replace(
        ACCOUNT, credentials={"private_key": ACCOUNT.credentials["private_key"]}
    )
    await MagmaOnePay(no_secret, make_channel(no_secret, http, clock), clock).fetch_balances()
    assert seen[0]["x-user-secret"] == "demo-magma-secret-key"
    assert seen[0]["authorization"] == "Bearer demo-magma-private-key"
    assert "x-user-secret" not in seen[1]
