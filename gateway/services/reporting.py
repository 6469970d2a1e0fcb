"""Totals in one reporting currency, beside the exact per-currency totals — pure functions.

Each per-currency total (`domain.totals`: one currency, one asset kind) is converted on its
own and kinds are never mixed. The CFA francs are fixed to the euro by treaty — 1 EUR =
655.957 XOF = 655.957 XAF, exactly — so between EUR, XOF and XAF a conversion is exact
(`approximate` false). Every other currency converts by a rate from a configured source,
quoted as units of the currency per one unit of the table's base currency, with the date
it was as of: those conversions are `approximate`, and say their rate and as-of (a rate
between two currencies of the table goes through its base, to 20 significant digits, and
is shown as used). A currency with no rate is listed `unconverted` — never dropped, never
added.

Rounding: each converted total is rounded once, to the reporting currency's minor unit
(ISO 4217) with the configured mode — half-even (banker's) or half-up — and a kind's
reporting total is the sum of its rounded parts, so the parts shown add up to it exactly.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_EVEN, ROUND_HALF_UP, Context, Decimal, localcontext

from gateway.config.reporting import EURO_PARITY, RateTable
from gateway.domain import CURRENCY_EXPONENTS, AssetKind, CurrencyTotal, Money

ROUNDINGS = {"half-even": ROUND_HALF_EVEN, "half-up": ROUND_HALF_UP}
DIVISION = Context(prec=50)  # a quotient's digits, before it is rounded to a minor unit
CROSS_RATE = Context(prec=20)  # a rate through the table's base: shown as it is used


@dataclass(frozen=True)
class Rate:
    """Units of a currency per one unit of the reporting currency."""

    units: Decimal
    approximate: bool
    as_of: date | None  # None when exact (a fixed parity has no date)
    source: str  # "fixed parity", or the table's source


@dataclass(frozen=True)
class ConvertedTotal:
    original: CurrencyTotal  # exact, in its own currency
    total: Money  # in the reporting currency, rounded
    available: Money
    rate: Decimal
    approximate: bool
    as_of: date | None
    source: str


@dataclass(frozen=True)
class ReportingTotal:
    """One asset kind's total in the reporting currency."""

    kind: AssetKind
    total: Money
    available: Money
    approximate: bool  # any part converted at a market rate
    rounding: str  # "half-even" or "half-up", to the reporting currency's minor unit
    converted: tuple[ConvertedTotal, ...]
    unconverted: tuple[CurrencyTotal, ...]  # no rate: listed, not added


def rate(currency: str, reporting: str, table: RateTable) -> Rate | None:
    """Units of `currency` per one `reporting` unit (None: no rate for one of them)."""
    if currency == reporting:
        return Rate(Decimal(1), False, None, "same currency")
    if currency in EURO_PARITY and reporting in EURO_PARITY:
        with localcontext(DIVISION):
            units = EURO_PARITY[currency] / EURO_PARITY[reporting]
        return Rate(units, False, None, "fixed parity")
    mine, theirs = table.per_base(currency), table.per_base(reporting)
    if mine is None or theirs is None:
        return None
    with localcontext(CROSS_RATE):
        units = mine[0] / theirs[0]
    exact = mine[1] and theirs[1]
    return Rate(units, not exact, None if exact else table.as_of, table.source)


def convert(amount: Decimal, units: Decimal, reporting: str, rounding: str) -> Decimal:
    """`amount` of a currency worth `units` of it per reporting unit, in the reporting
    currency: rounded once to its minor unit."""
    step = Decimal(1).scaleb(-CURRENCY_EXPONENTS[reporting])
    with localcontext(DIVISION):
        return (amount / units).quantize(step, rounding=ROUNDINGS[rounding])


def _converted(
    original: CurrencyTotal, found: Rate, reporting: str, rounding: str
) -> ConvertedTotal | None:
    """One total converted (None: the result would leave the money domain)."""
    try:
        total, available = (
            Money(convert(money.amount, found.units, reporting, rounding), reporting)
            for money in (original.total, original.available)
        )
    except ValueError:
        return None
    return ConvertedTotal(
        original, total, available, found.units, found.approximate, found.as_of, found.source
    )


def reporting_totals(
    totals: Iterable[CurrencyTotal], reporting: str, table: RateTable, rounding: str
) -> list[ReportingTotal]:
    """Per asset kind (in `AssetKind`'s order, kinds present only), the exact per-currency
    totals converted to `reporting`, summed; those without a rate listed apart."""
    by_kind: dict[AssetKind, list[CurrencyTotal]] = {}
    for total in totals:
        by_kind.setdefault(total.kind, []).append(total)
    answer = []
    for kind in AssetKind:
        if kind not in by_kind:
            continue
        converted, unconverted = [], []
        for original in by_kind[kind]:
            found = rate(original.currency, reporting, table)
            part = None if found is None else _converted(original, found, reporting, rounding)
            if part is None:
                unconverted.append(original)
            else:
                converted.append(part)
        with localcontext(DIVISION):
            in_total = sum((c.total.amount for c in converted), Decimal(0))
            in_available = sum((c.available.amount for c in converted), Decimal(0))
        answer.append(
            ReportingTotal(
                kind,
                Money(in_total, reporting),
                Money(in_available, reporting),
                any(c.approximate for c in converted),
                rounding,
                tuple(converted),
                tuple(unconverted),
            )
        )
    return answer
