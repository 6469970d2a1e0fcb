"""A client's mistakes are VALIDATION with a clear message, whatever form they take:
literals and variables alike, several operations without a name, money strings `Decimal()`
would take but a person did not mean. Nothing reaches a provider, nothing is logged as a bug."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from gateway.simulator import Simulator
from tests.helpers import TOP_UP, FakeClock, GatewayClient, demo_settings, running_gateway, topup

TOP_UP_LITERAL = """mutation { topUp(input: {accountId: "ourvoice-sn", amount: %s,
  paymentMethod: "MTN MOMO", paymentReference: "PAY-1", idempotencyKey: "k-1"}) { __typename } }"""
FILTERED = '{ transactions(accountId: "paymob-eg", filter: {createdFrom: %s}) { __typename } }'
FILTERED_VAR = """query($d: DateTime) { transactions(accountId: "paymob-eg", filter: {createdFrom: $d})
  { __typename } }"""


@pytest.fixture
async def gw(
    sim_transport: httpx.AsyncBaseTransport, clock: FakeClock
) -> AsyncIterator[GatewayClient]:
    async with running_gateway(demo_settings(), sim_transport, clock) as gateway:
        yield gateway


def validation(result: dict[str, Any]) -> str:
    """The one VALIDATION error's message (and nothing executed)."""
    assert result.get("data") is None, result
    (error,) = result["errors"]
    assert error["extensions"]["code"] == "VALIDATION", error
    message: str = error["message"]
    return message


def untouched(sim: Simulator) -> None:
    assert sum(sim.state.calls.values()) == 0, dict(sim.state.calls)


@pytest.mark.parametrize(
    "amount",
    ["abc", "1_000", "١٠٠٠", " 5000", "5000 ", "5000.", ".5", "5e3", "+5000", "", "1" * 16],
)
async def test_a_money_string_in_an_unusual_form_is_refused_as_literal_and_variable(
    amount: str, gw: GatewayClient, sim: Simulator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR)
    as_literal = validation(await gw.query(TOP_UP_LITERAL % f'"{amount}"'))
    as_variable = validation(await gw.query(TOP_UP, topup(amount=amount)))
    assert "decimal" in as_literal.lower() or "digits" in as_literal
    assert as_variable.startswith("Variable '$input'") and as_literal in as_variable
    untouched(sim)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


@pytest.mark.parametrize(
    "value",
    [
        "not-a-date",
        "0001-01-01T00:00:00+01:00",  # overflows when converted to UTC
        "2024-06-04",  # no time, no zone
        "2024-06-04T00:43:26",  # no zone
        "2024-06-04 00:43:26Z",
        "２０２４-06-04T00:43:26Z",  # other scripts' digits
        "2201-01-01T00:00:00Z",
    ],
)
async def test_a_bad_datetime_is_validation_as_literal_and_variable(
    value: str, gw: GatewayClient, sim: Simulator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR)
    as_literal = validation(await gw.query(FILTERED % f'"{value}"'))
    as_variable = validation(await gw.query(FILTERED_VAR, {"d": value}))
    assert "DateTime" in as_literal or "instant" in as_literal
    assert as_literal in as_variable
    untouched(sim)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_an_amount_finer_than_the_currency_is_rejected_before_sending(
    gw: GatewayClient, sim: Simulator
) -> None:
    answer = (await gw.query(TOP_UP, topup(amount="5000.5")))["data"]["topUp"]
    assert answer["__typename"] == "TopUpRejected" and answer["code"] == "VALIDATION"
    untouched(sim)


@pytest.mark.parametrize(
    "changes",
    [{"paymentMethod": " MTN MOMO"}, {"paymentReference": "PAY-1\n"}, {"idempotencyKey": "k-1 "}],
)
async def test_padded_strings_are_refused_not_trimmed(
    changes: dict[str, str], gw: GatewayClient, sim: Simulator
) -> None:
    answer = (await gw.query(TOP_UP, topup(**changes)))["data"]["topUp"]
    assert answer["__typename"] == "TopUpRejected" and answer["code"] == "VALIDATION"
    assert "unpadded" in answer["message"]
    untouched(sim)


async def test_padded_filter_strings_are_refused(gw: GatewayClient, sim: Simulator) -> None:
    query = """query($f: TransactionFilter) { transactions(accountId: "paymob-eg", filter: $f) {
      __typename ... on ProviderFailure { code message } } }"""
    for value in ({"reference": " 123"}, {"types": ["card", ""]}):
        result = await gw.query(query, {"f": value})
        assert result["errors"][0]["extensions"]["code"] == "VALIDATION", result
    untouched(sim)


async def test_several_operations_without_a_name_run_none_of_them(
    gw: GatewayClient, sim: Simulator
) -> None:
    document = (TOP_UP_LITERAL % '"5000"').replace("mutation {", "mutation Pay {") + (
        " query Look { countries { code } }"
    )
    refused = await gw.http.post("/graphql", json={"query": document})
    message = validation(refused.json())
    assert "2 operations" in message and "operationName" in message
    untouched(sim)  # the top-up, first in the document, was not sent
    chosen = await gw.http.post("/graphql", json={"query": document, "operationName": "Look"})
    assert chosen.json()["data"]["countries"]
    untouched(sim)
