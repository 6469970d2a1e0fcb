"""Our Voice quirks: inner `data` as a JSON string or an object; never repaired."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from gateway.domain import AssetKind
from gateway.errors import ErrorCode, UpstreamContext
from gateway.providers.ourvoice import parse_balance
from tests.helpers import code_raised, demo_accounts

ACCOUNT = demo_accounts()["ourvoice-sn"]
CTX = UpstreamContext("ourvoice", "ourvoice-sn")


def body(inner: object, success: object = True) -> bytes:
    return json.dumps({"data": {"success": success, "message": "ok", "data": inner}}).encode()


def test_inner_data_as_a_json_string() -> None:
    balance = parse_balance(body('{"balance": 50000}'), ACCOUNT, CTX)
    assert balance.total.amount == Decimal("50000")
    assert balance.total.currency == "XOF"
    assert balance.asset.kind is AssetKind.PREPAID_CREDIT
    assert balance.country is not None and balance.country.code == "SN"


def test_inner_data_as_an_object() -> None:
    balance = parse_balance(body({"balance": 125750.5}), ACCOUNT, CTX)
    assert str(balance.available.amount) == "125750.5"


def test_envelope_without_success_as_in_the_balance_doc_is_accepted() -> None:
    raw = (
        b'{"data": {"message": "Operation successfully executed", "data": "{\\"balance\\":50000}"}}'
    )
    assert parse_balance(raw, ACCOUNT, CTX).total.amount == 50000


@pytest.mark.parametrize(
    "raw",
    [
        body('{"balance": 50000'),  # undecodable inner string: never repaired
        body("{'balance': 50000}"),  # the doc's own single quotes
        body('{"balance": "50000"}'),  # a string where a number belongs
        body('{"balance": NaN}'),
        body({"balance": None}),
        body({"credit": 1}),
        body([1, 2]),
        b'{"data": "x"}',
        b"[]",
    ],
)
def test_bad_bodies_are_bad_responses(raw: bytes) -> None:
    assert code_raised(parse_balance, raw, ACCOUNT, CTX) is ErrorCode.UPSTREAM_BAD_RESPONSE


def test_success_false_is_a_failure_not_a_balance() -> None:
    assert (
        code_raised(parse_balance, body({"balance": 1}, success=False), ACCOUNT, CTX)
        is ErrorCode.UPSTREAM_UNAVAILABLE
    )
