"""Paymob Bills quirks: the HMAC signature, its window and single-use nonces, slashes."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from gateway.errors import ErrorCode, UpstreamContext, UpstreamError
from gateway.providers.paymob_bills import (
    PaymobBills,
    parse_balances,
    signature_header,
    timestamp_of,
)
from gateway.simulator import Simulator
from gateway.upstream.client import UpstreamClient
from tests.helpers import FakeClock, code_raised, demo_accounts, make_channel

ACCOUNT = demo_accounts()["paymob-eg"]
CTX = UpstreamContext("paymob_bills", "paymob-eg")
NONCE = "7f1c2a9e-3b4d-4c5e-8f60-718293a4b5c6"

# Computed by hand from the documented steps, outside this code base:
#   msg='GET/api/v1/balance/pk_demo20240604T0043'"$NONCE"
#   sig=$(printf '%s' "$msg" | openssl dgst -sha256 -hmac sk_demo)   → 0f942eb8…a0f9
#   printf '%s' "pk_demo.20240604T0043.$sig.$NONCE" | base64 -w0
VECTOR = (
    "cGtfZGVtby4yMDI0MDYwNFQwMDQzLjBmOTQyZWI4Y2QwOWU3OWQ3Mjc4ZDNhMWU5ZWMyZGI3MGMzMTdkNWVkYT"
    "Y1MTc3Y2UyZGIzMWVmODdiOGEwZjkuN2YxYzJhOWUtM2I0ZC00YzVlLThmNjAtNzE4MjkzYTRiNWM2"
)


def test_signature_matches_the_hand_computed_vector() -> None:
    header = signature_header(
        "GET", "/api/v1/balance/", "pk_demo", "sk_demo", "20240604T0043", NONCE
    )
    assert header == VECTOR


def test_timestamp_is_utc_to_the_minute() -> None:
    moment = datetime(2024, 6, 4, 3, 43, 59, tzinfo=UTC)
    assert timestamp_of(moment) == "20240604T0343"


async def test_headers_sign_the_path_as_sent_and_ask_for_english(
    http: UpstreamClient, clock: FakeClock
) -> None:
    adapter = PaymobBills(ACCOUNT, make_channel(ACCOUNT, http, clock), clock, nonce=lambda: NONCE)
    headers = adapter.headers("GET", "http://127.0.0.1:8001/paymob/api/v1/balance/?page=2")
    expected = signature_header(
        "GET",
        "/paymob/api/v1/balance/",
        "demo-paymob-public-key",
        "demo-paymob-secret-key",
        "20240604T0043",
        NONCE,
    )
    assert headers["Authorization"] == expected
    assert headers["Accept-Language"] == "en"


async def test_a_replayed_nonce_is_refused(http: UpstreamClient, clock: FakeClock) -> None:
    adapter = PaymobBills(ACCOUNT, make_channel(ACCOUNT, http, clock), clock, nonce=lambda: NONCE)
    await adapter.fetch_balances()
    with pytest.raises(UpstreamError) as raised:
        await adapter.fetch_balances()
    assert raised.value.code is ErrorCode.UPSTREAM_UNAUTHORIZED


async def test_a_skewed_clock_is_refused(http: UpstreamClient, sim: Simulator) -> None:
    skewed = FakeClock(sim.state.clock() - 15 * 60)
    with pytest.raises(UpstreamError) as raised:
        await PaymobBills(ACCOUNT, make_channel(ACCOUNT, http, skewed), skewed).fetch_balances()
    assert raised.value.code is ErrorCode.UPSTREAM_UNAUTHORIZED


async def test_fresh_nonces_sign_every_request(http: UpstreamClient, clock: FakeClock) -> None:
    adapter = PaymobBills(ACCOUNT, make_channel(ACCOUNT, http, clock), clock)
    for _ in range(3):
        assert len(await adapter.fetch_balances()) == 2


async def test_a_redirect_is_never_followed(http: UpstreamClient) -> None:
    # The simulator redirects a path without its trailing slash, Django-style.
    response = await http.send(CTX, "GET", "http://sim/paymob/api/v1/balance", timeout_seconds=1)
    assert response.status == 301
    assert code_raised(http.raise_for_status, CTX, response) is ErrorCode.UPSTREAM_BAD_RESPONSE


def test_commission_is_its_own_balance() -> None:
    raw = json.dumps({"amount_available": 1, "available_commission": 2, "merchant_id": 1}).encode()
    available, commission = parse_balances(raw, ACCOUNT, CTX)
    assert (available.asset.kind.value, commission.asset.kind.value) == ("CASH", "COMMISSION")
    assert available.country is not None and available.country.code == "EG"


@pytest.mark.parametrize(
    "raw",
    [
        b'{"amount_available": "1292.25", "available_commission": 1}',
        b'{"amount_available": NaN, "available_commission": 1}',
        b'{"amount_available": 1}',
        b'{"detail": "Invalid signature."}',
        b"[1292.25]",
    ],
)
def test_bad_bodies_are_bad_responses(raw: bytes) -> None:
    assert code_raised(parse_balances, raw, ACCOUNT, CTX) is ErrorCode.UPSTREAM_BAD_RESPONSE
