"""Totals in one reporting currency, on exact Decimals: the CFA francs at their fixed
parity, other currencies at a configured rate (approximate, with rate and as-of), a
currency without a rate listed, kinds never mixed, rounding as stated."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

import httpx
import pytest

from gateway.config.reporting import RateTable, ReportingSettings
from gateway.domain import AssetKind, CurrencyTotal, Money
from gateway.services.reporting import reporting_totals
from tests.helpers import FakeClock, demo_settings, running_gateway, with_section

AS_OF = date(2024, 6, 3)
TABLE = RateTable("EUR", AS_OF, {"USD": Decimal("1.0842"), "KES": Decimal("140")})


def total(currency: str, amount: str, kind: AssetKind = AssetKind.CASH) -> CurrencyTotal:
    money = Money(Decimal(amount), currency)
    return CurrencyTotal(currency, kind, money, money)


def test_the_cfa_francs_convert_exactly_at_their_fixed_parity() -> None:
    (cash,) = reporting_totals(
        [total("XOF", "50000"), total("XAF", "1234567")], "EUR", TABLE, "half-even"
    )
    xof, xaf = cash.converted
    assert (xof.total, xof.rate, xof.approximate, xof.as_of) == (
        Money(Decimal("76.22"), "EUR"),  # 76.2245086…
        Decimal("655.957"),
        False,
        None,
    )
    assert xof.source == "fixed parity" and xaf.total.amount == Decimal("1882.09")
    assert cash.total == Money(Decimal("1958.31"), "EUR")  # the sum of the rounded parts
    assert cash.approximate is False and cash.unconverted == ()
    # and between the two francs, one for one
    (francs,) = reporting_totals([total("XOF", "50000")], "XAF", TABLE, "half-even")
    assert francs.total == Money(Decimal("50000"), "XAF") and not francs.approximate


@pytest.mark.parametrize(("rounding", "francs"), [("half-even", "327978"), ("half-up", "327979")])
def test_euros_to_francs_are_exact_a_tie_rounded_once(rounding: str, francs: str) -> None:
    """EUR 500.00 is XOF 327,978.5 exactly: a tie, rounded once by the stated mode (never
    through 1/655.957, which does not end)."""
    (cash,) = reporting_totals([total("EUR", "500.00")], "XOF", TABLE, rounding)
    (eur,) = cash.converted
    assert eur.total == Money(Decimal(francs), "XOF") and not eur.approximate


def test_a_rate_that_would_leave_the_money_domain_leaves_its_currency_unconverted() -> None:
    tiny = RateTable("EUR", AS_OF, {"USD": Decimal("1e-60"), "KES": Decimal("1E-999999999")})
    parts = [total("USD", "5"), total("KES", "7"), total("XOF", "655957")]
    (cash,) = reporting_totals(parts, "EUR", tiny, "half-even")
    assert [u.currency for u in cash.unconverted] == ["USD", "KES"]
    assert cash.total == Money(Decimal("1000.00"), "EUR")
    wide = RateTable("EUR", AS_OF, {"USD": Decimal(1), "GBP": Decimal(1)})
    big = [total("USD", "9" + "0" * 23), total("GBP", "8" + "0" * 23)]
    (cash,) = reporting_totals(big, "EUR", wide, "half-even")  # together past the domain
    assert [u.currency for u in cash.unconverted] == ["USD"]
    assert cash.total.amount == Decimal("8" + "0" * 23)


def test_other_currencies_are_approximate_with_their_rate_and_as_of() -> None:
    (cash,) = reporting_totals(
        [total("USD", "1084.20"), total("XOF", "50000")], "EUR", TABLE, "half-even"
    )
    usd, _ = cash.converted
    assert (usd.total, usd.rate, usd.approximate, usd.as_of, usd.source) == (
        Money(Decimal("1000.00"), "EUR"),
        Decimal("1.0842"),
        True,
        AS_OF,
        "configuration",
    )
    assert cash.approximate is True and cash.total.amount == Decimal("1076.22")
    # to a currency of the table, through its base: XOF per USD = 655.957 / 1.0842
    (in_usd,) = reporting_totals([total("XOF", "50000")], "USD", TABLE, "half-even")
    (part,) = in_usd.converted
    assert part.approximate and part.rate == Decimal("605.01475742482936728")  # 20 digits
    assert part.total == Money(Decimal("82.64"), "USD")  # 82.6419…


def test_a_currency_without_a_rate_is_listed_never_dropped_and_kinds_never_mix() -> None:
    answer = reporting_totals(
        [
            total("UGX", "900000"),
            total("KES", "1400.00"),
            total("KES", "280.00", AssetKind.COLLATERAL),
            total("XOF", "655957", AssetKind.PREPAID_CREDIT),
        ],
        "EUR",
        TABLE,
        "half-even",
    )
    cash, credit, collateral = answer  # in AssetKind's order
    assert [c.original.currency for c in cash.converted] == ["KES"]
    assert [u.currency for u in cash.unconverted] == ["UGX"]
    assert cash.total == Money(Decimal("10.00"), "EUR")
    assert (credit.kind, credit.total.amount) == (AssetKind.PREPAID_CREDIT, Decimal("1000"))
    assert (collateral.kind, collateral.total.amount) == (AssetKind.COLLATERAL, Decimal("2.00"))


@pytest.mark.parametrize(("rounding", "cents"), [("half-even", "50.02"), ("half-up", "50.03")])
def test_rounding_is_the_stated_mode_to_the_minor_unit(rounding: str, cents: str) -> None:
    table = RateTable("EUR", AS_OF, {"USD": Decimal("2")})
    (cash,) = reporting_totals([total("USD", "100.05")], "EUR", table, rounding)  # 50.025
    assert cash.total == Money(Decimal(cents), "EUR") and cash.rounding == rounding
    (in_tnd,) = reporting_totals(
        [total("EUR", "1")], "TND", RateTable("EUR", AS_OF, {"TND": Decimal("3.3333")}), rounding
    )
    assert in_tnd.total.amount == Decimal("3.333")  # TND has three decimals


REPORT = """{ balances { totals { currency kind total { amount } }
  reportingTotals { kind total { amount currency } approximate rounding
    converted { original { currency } total { amount } rate approximate asOf source }
    unconverted { currency total { amount } } } } }"""


async def test_the_report_gives_the_configured_reporting_totals(
    sim_transport: httpx.AsyncBaseTransport, clock: FakeClock
) -> None:
    reporting = ReportingSettings(
        "EUR", "half-even", RateTable("EUR", AS_OF, {"EGP": Decimal("51.5")})
    )
    settings = with_section(demo_settings(), "reporting", **vars(reporting))
    async with running_gateway(settings, sim_transport, clock) as gateway:
        answer = await gateway.query(REPORT)
        in_usd = await gateway.query(
            '{ balances(accountIds: ["ourvoice-sn"]) { reportingTotals(reportingCurrency: "USD") '
            "{ converted { approximate } unconverted { currency } } } }"
        )
        wrong = await gateway.query(
            '{ balances { reportingTotals(reportingCurrency: "EURO") { kind } } }'
        )
    report: dict[str, Any] = answer["data"]["balances"]
    by_kind = {r["kind"]: r for r in report["reportingTotals"]}
    credit = by_kind["PREPAID_CREDIT"]  # the Our Voice accounts' XOF
    assert credit["approximate"] is False and credit["unconverted"] == []
    assert {c["source"] for c in credit["converted"]} == {"fixed parity"}
    cash = by_kind["CASH"]
    egp = next(c for c in cash["converted"] if c["original"]["currency"] == "EGP")
    assert (egp["rate"], egp["approximate"], egp["asOf"]) == ("51.5", True, "2024-06-03")
    assert {u["currency"] for u in cash["unconverted"]} >= {"UGX", "KES"}  # no rate: listed
    listed = {(t["currency"], t["kind"]) for t in report["totals"]}
    for kind, reported in by_kind.items():
        parts = {c["original"]["currency"] for c in reported["converted"]}
        parts |= {u["currency"] for u in reported["unconverted"]}
        assert parts == {c for c, k in listed if k == kind}  # every total, once
    (usd,) = in_usd["data"]["balances"]["reportingTotals"]
    assert usd["converted"] == [] and usd["unconverted"] == [{"currency": "XOF"}]  # no USD rate
    assert wrong["errors"][0]["extensions"]["code"] == "VALIDATION"
