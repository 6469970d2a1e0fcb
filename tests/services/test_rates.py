"""A rates provider over HTTP (`[reporting] rates_url`): read through the upstream channel
and the cache — exact from its JSON text, one read per fresh window, stale while it fails —
and, when it cannot be read, only the exact conversions."""

from __future__ import annotations

import dataclasses
from datetime import date
from decimal import Decimal
from typing import Any

import httpx
import pytest

from gateway.config.reporting import ReportingSettings
from gateway.errors import UpstreamBadResponse
from gateway.services.rates import decode_table, encode_table, parse_rates
from gateway.simulator import Simulator
from tests.helpers import FakeClock, demo_settings, running_gateway, with_section

URL = "http://127.0.0.1:8001/rates/latest"  # the simulator's rates, on its transport
QUERY = """{ balances(accountIds: ["ourvoice-sn", "paymob-eg"]) {
  reportingTotals(reportingCurrency: "USD") { kind total { amount }
    converted { original { currency } rate approximate asOf source } unconverted { currency } } } }"""


def test_a_table_is_read_exactly_from_the_json_text_and_kept_as_read() -> None:
    body = b'{"base": "EUR", "date": "2024-06-03", "rates": {"USD": 1.0842, "XYZ": 3, "EGP": 0}}'
    table = parse_rates(body, "rates provider example")
    assert table.rates == {"USD": Decimal("1.0842")}  # unknown and zero rates skipped
    assert (table.base, table.as_of) == ("EUR", date(2024, 6, 3))
    assert decode_table(encode_table(table)) == table
    assert decode_table("not json") is None
    for bad in (b"[]", b'{"base": "EUR"}', b'{"base": "ABC", "date": "2024-06-03", "rates": {}}'):
        with pytest.raises(UpstreamBadResponse):
            parse_rates(bad, "x")


def with_rates_url(settings: Any) -> Any:
    reporting = dataclasses.replace(ReportingSettings("EUR"), rates_url=URL)
    return with_section(settings, "reporting", **vars(reporting))


def by_kind(answer: dict[str, Any]) -> dict[str, Any]:
    return {r["kind"]: r for r in answer["data"]["balances"]["reportingTotals"]}


def test_a_hostile_answer_is_refused_or_its_wild_rates_skipped() -> None:
    with pytest.raises(UpstreamBadResponse):
        parse_rates(b"[" * 100_000, "x")  # deeper than the parser goes
    body = b'{"base": "EUR", "date": "2024-06-03", "rates": {"USD": 1e-60, "GBP": 1e-999999999,'
    body += b' "ZAR": 1e12, "KES": 140.1}}'
    assert parse_rates(body, "x").rates == {"KES": Decimal("140.1")}


async def test_the_providers_rates_convert_and_are_read_once_per_window(
    sim: Simulator, sim_transport: httpx.AsyncBaseTransport, clock: FakeClock
) -> None:
    async with running_gateway(with_rates_url(demo_settings()), sim_transport, clock) as gateway:
        first = by_kind(await gateway.query(QUERY))
        await gateway.query(QUERY)
        assert sim.state.calls_to("rates", "latest") == 1  # cached: one read
        sim.state.set_faults("rates", status=503)
        clock.advance(3601)  # past rates_fresh_seconds: asked again, failing: stale
        stale = by_kind(await gateway.query(QUERY))
        assert sim.state.calls_to("rates", "latest") > 1
    (xof,) = first["PREPAID_CREDIT"]["converted"]  # 655.957 XOF per EUR / 1.0842 USD per EUR
    assert xof["rate"] == "605.01475742482936728" and xof["approximate"] is True
    assert xof["asOf"] == "2024-06-04" and xof["source"] == "rates provider 127.0.0.1"
    (egp,) = first["CASH"]["converted"]
    assert egp["rate"] == "47.472790997970854086"  # 51.47 / 1.0842, to 20 digits
    assert stale == first  # the last table, while the provider fails


async def test_without_the_provider_only_the_exact_conversions_remain(
    sim: Simulator, sim_transport: httpx.AsyncBaseTransport, clock: FakeClock
) -> None:
    sim.state.set_faults("rates", status=503)
    async with running_gateway(with_rates_url(demo_settings()), sim_transport, clock) as gateway:
        in_usd = by_kind(await gateway.query(QUERY))
        in_eur = by_kind(await gateway.query(QUERY.replace('"USD"', '"EUR"')))
    assert in_usd["PREPAID_CREDIT"]["unconverted"] == [{"currency": "XOF"}]  # no USD rate
    assert in_eur["PREPAID_CREDIT"]["converted"][0]["source"] == "fixed parity"  # still exact
    assert in_eur["CASH"]["unconverted"] == [{"currency": "EGP"}]  # listed, never guessed
