"""Balance bodies decoded straight into each provider's documented structs (msgspec): the
same answers and the same coded errors as the stdlib reader gave — money exact from the
number's own text, never a float, and a body off its documented shape a bad response
(never an exception of the library, never a 500)."""

from __future__ import annotations

import json
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest

from gateway.domain import Balance
from gateway.errors import ErrorCode, UpstreamContext
from gateway.providers import magma_onepay, muda, ourvoice, paymob_bills
from gateway.upstream.client import UpstreamResponse
from tests.helpers import code_raised, demo_accounts

ACCOUNTS = demo_accounts()
CTX = UpstreamContext("test", "test")


def ourvoice_body(number: str) -> bytes:
    return b'{"data": {"success": true, "data": {"balance": %s}}}' % number.encode()


def magma_body(number: str) -> bytes:
    item = b'{"code": "GH", "currency": "GHS", "balance": %s, "balance_available": 0}'
    return b'{"code": 200, "data": [%s]}' % (item % number.encode())


def paymob_body(number: str) -> bytes:
    return b'{"amount_available": %s, "available_commission": 0}' % number.encode()


def first_amount(provider: str, raw: bytes) -> Decimal:
    balances: tuple[Balance, ...]
    if provider == "ourvoice":
        balances = (ourvoice.parse_balance(raw, ACCOUNTS["ourvoice-sn"], CTX),)
    elif provider == "magma":
        balances = magma_onepay.parse_balances(raw, ACCOUNTS["magma"], CTX)
    else:
        balances = paymob_bills.parse_balances(raw, ACCOUNTS["paymob-eg"], CTX)
    return balances[0].total.amount


BODIES: dict[str, Callable[[str], bytes]] = {
    "ourvoice": ourvoice_body,
    "magma": magma_body,
    "paymob": paymob_body,
}


@pytest.mark.parametrize("provider", sorted(BODIES))
@pytest.mark.parametrize(
    ("number", "amount"),
    [
        ("15230.75", "15230.75"),
        ("0.10000001", "0.10000001"),  # a float would read 0.10000000999999999
        ("8200.10", "8200.10"),  # the written precision is kept
        ("1E+3", "1E+3"),  # exponent notation: the same value as today
        ("999999999999999", "999999999999999"),
        ("12", "12"),
    ],
)
def test_json_numbers_are_exact_decimals_from_their_own_text(
    provider: str, number: str, amount: str
) -> None:
    found = first_amount(provider, BODIES[provider](number))
    assert type(found) is Decimal and str(found) == amount


@pytest.mark.parametrize("provider", sorted(BODIES))
@pytest.mark.parametrize(
    "number",
    [
        "1000000000000000",  # 16 digits before the point
        "1" + "0" * 5000,  # far past any integer type
        "1.123456789",  # 9 after
        "9e999999",
        "1e-999999",
        "1e99999999999999999999",  # past Decimal's own exponents: was an INTERNAL failure
        "1.5e-99999999999999999999",
        "NaN",
        "Infinity",
        "-Infinity",
        '"12.5"',  # a string where the docs give a number
        "true",
        "null",
        "[1]",
        "01",
        "1.",
        ".5",
    ],
)
def test_amounts_outside_the_grammar_or_the_domain_are_bad_responses(
    provider: str, number: str
) -> None:
    assert (
        code_raised(first_amount, provider, BODIES[provider](number))
        is ErrorCode.UPSTREAM_BAD_RESPONSE
    )


def muda_response(data: Any, status: Any = 200, http: int = 200) -> UpstreamResponse:
    return UpstreamResponse(http, {}, json.dumps({"status": status, "data": data}).encode())


def muda_item(balance: Any) -> dict[str, Any]:
    return {"asset_code": "UGX", "asset_issuer": "i", "currency": "UGX", "balance": balance}


@pytest.mark.parametrize("text", ["4621.0000000", "0", "1E+3", "0.00000001"])
def test_muda_decimal_strings_stay_exact(text: str) -> None:
    (balance,) = muda.parse_balances(muda_response([muda_item(text)]), ACCOUNTS["muda-ug"], CTX)
    assert balance.total.amount.as_tuple() == Decimal(text).as_tuple()  # digits as written


@pytest.mark.parametrize(
    ("response", "code"),
    [
        (muda_response([muda_item(4621)]), ErrorCode.UPSTREAM_BAD_RESPONSE),  # not a string
        (muda_response([muda_item(" 5")]), ErrorCode.UPSTREAM_BAD_RESPONSE),
        (muda_response([muda_item("NaN")]), ErrorCode.UPSTREAM_BAD_RESPONSE),
        (muda_response([muda_item("-1")]), ErrorCode.UPSTREAM_BAD_RESPONSE),
        (muda_response([{**muda_item("1"), "asset_code": ""}]), ErrorCode.UPSTREAM_BAD_RESPONSE),
        (muda_response(None), ErrorCode.UPSTREAM_BAD_RESPONSE),
        (muda_response({"balance": "1"}), ErrorCode.UPSTREAM_BAD_RESPONSE),
        (muda_response(None, status="200"), ErrorCode.UPSTREAM_BAD_RESPONSE),
        (muda_response(None, status=400), ErrorCode.UPSTREAM_UNAVAILABLE),
        (muda_response(None, status=401), ErrorCode.UPSTREAM_UNAUTHORIZED),
        (muda_response(None, status=429), ErrorCode.UPSTREAM_RATE_LIMITED),
        (muda_response(None, status=400, http=400), ErrorCode.UPSTREAM_UNAVAILABLE),
        (UpstreamResponse(200, {}, b"[]"), ErrorCode.UPSTREAM_BAD_RESPONSE),
    ],
)
def test_muda_envelopes_keep_their_codes(response: UpstreamResponse, code: ErrorCode) -> None:
    assert code_raised(muda.parse_balances, response, ACCOUNTS["muda-ug"], CTX) is code


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        # `success` is read before the inner payload, as before: false is the provider's
        # failure whatever the payload looks like.
        (b'{"data": {"success": false, "data": 5}}', ErrorCode.UPSTREAM_UNAVAILABLE),
        (b'{"data": {"success": false}}', ErrorCode.UPSTREAM_UNAVAILABLE),
        (b'{"data": {"success": "true", "data": {"balance": 1}}}', ErrorCode.UPSTREAM_UNAVAILABLE),
        (b'{"data": {"success": true}}', ErrorCode.UPSTREAM_BAD_RESPONSE),
        (b'{"data": {"data": null}}', ErrorCode.UPSTREAM_BAD_RESPONSE),
        (b'{"data": {"data": "\\"5\\""}}', ErrorCode.UPSTREAM_BAD_RESPONSE),
        (b'{"data": {"data": "[1]"}}', ErrorCode.UPSTREAM_BAD_RESPONSE),
        (b"[" * 100_000 + b"]" * 100_000, ErrorCode.UPSTREAM_BAD_RESPONSE),  # deep nesting
        # A lone surrogate is not Unicode text: refused (the stdlib let one pass in a field
        # nobody reads).
        (b'{"data": {"data": {"balance": 1}}, "x": "\\ud800"}', ErrorCode.UPSTREAM_BAD_RESPONSE),
        (b"\xff", ErrorCode.UPSTREAM_BAD_RESPONSE),
        (b"", ErrorCode.UPSTREAM_BAD_RESPONSE),
    ],
)
def test_ourvoice_envelopes_keep_their_codes(raw: bytes, code: ErrorCode) -> None:
    assert code_raised(ourvoice.parse_balance, raw, ACCOUNTS["ourvoice-sn"], CTX) is code


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        # `code` is read before `data`, as before: an error status whatever `data` holds.
        (b'{"code": 401, "data": "denied"}', ErrorCode.UPSTREAM_UNAUTHORIZED),
        (b'{"code": 503}', ErrorCode.UPSTREAM_UNAVAILABLE),
        (b'{"code": "200", "data": []}', ErrorCode.UPSTREAM_BAD_RESPONSE),
        (b'{"data": []}', ErrorCode.UPSTREAM_BAD_RESPONSE),
        (b'{"code": 200}', ErrorCode.UPSTREAM_BAD_RESPONSE),
        (b'{"code": 200, "data": [5]}', ErrorCode.UPSTREAM_BAD_RESPONSE),
        (b'{"code": 200, "data": [{"code": "", "balance": 1, "balance_available": 1}]}', None),
        (b'[{"code": "GH", "currency": "GHS", "balance": 1}]', None),  # no balance_available
        (
            b'[{"code": "GH", "currency": "GHS", "balance": 1, "balance_available": 1, '
            b'"name": ""}]',
            None,
        ),
        (b'"ok"', None),
    ],
)
def test_magma_envelopes_keep_their_codes(raw: bytes, code: ErrorCode | None) -> None:
    assert code_raised(magma_onepay.parse_balances, raw, ACCOUNTS["magma"], CTX) is (
        code or ErrorCode.UPSTREAM_BAD_RESPONSE
    )


def test_magma_code_written_as_200_point_0_is_success() -> None:
    raw = magma_body("5").replace(b'"code": 200', b'"code": 200.0', 1)
    (balance,) = magma_onepay.parse_balances(raw, ACCOUNTS["magma"], CTX)
    assert balance.total.amount == 5 and balance.pending is not None


@pytest.mark.parametrize(
    "raw",
    [
        b'{"amount_available": 1}',
        b'{"amount_available": 1, "available_commission": "2"}',
        b"[1, 2]",
        b"{}",
    ],
)
def test_paymob_bodies_off_their_shape_are_bad_responses(raw: bytes) -> None:
    assert (
        code_raised(paymob_bills.parse_balances, raw, ACCOUNTS["paymob-eg"], CTX)
        is ErrorCode.UPSTREAM_BAD_RESPONSE
    )


def test_a_history_amount_past_decimals_own_exponents_is_a_bad_response() -> None:
    """The stdlib path (histories, top-ups) refuses it too, instead of failing INTERNAL."""
    row = b'{"transfer_token": "t", "currency": "XOF", "amount": 1e99999999999999999999}'
    body = b'{"code": 200, "data": [%s]}' % row
    bad = code_raised(magma_onepay.parse_history, body, ACCOUNTS["magma"], CTX)
    assert bad is ErrorCode.UPSTREAM_BAD_RESPONSE
