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
    """Units of a currency per one unit of the reporting currency: `units` as shown, and
    the conversion as used — an amount times `times`, divided by `per`, rounded once. A
    fixed parity converts exactly (EUR → XOF is × 655.957), whatever `units` shows."""

    units: Decimal
    approximate: bool
    as_of: date | None  # None when exact (a fixed parity has no date)
    source: str  # "fixed parity", or the table's source
    times: Decimal
    per: Decimal


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
        return Rate(Decimal(1), False, None, "same currency", Decimal(1), Decimal(1))
    if currency in EURO_PARITY and reporting in EURO_PARITY:
        own, other = EURO_PARITY[currency], EURO_PARITY[reporting]
        with localcontext(CROSS_RATE):
            shown = own / other  # 1/655.957 does not end: shown to 20 digits, used exactly
        return Rate(shown, False, None, "fixed parity", other, own)
    mine, theirs = table.per_base(currency), table.per_base(reporting)
    if mine is None or theirs is None:
        return None
    with localcontext(CROSS_RATE):
        units = mine[0] / theirs[0]
    exact = mine[1] and theirs[1]
    as_of = None if exact else table.as_of
    return Rate(units, not exact, as_of, table.source, Decimal(1), units)  # used as shown


def convert(amount: Decimal, found: Rate, reporting: str, rounding: str) -> Decimal:
    """`amount` of a currency converted at `found`, in the reporting currency: rounded once
    to its minor unit (one division, so a tie is a tie)."""
    step = Decimal(1).scaleb(-CURRENCY_EXPONENTS[reporting])
    with localcontext(DIVISION):
        return (amount * found.times / found.per).quantize(step, rounding=ROUNDINGS[rounding])


def _converted(
    original: CurrencyTotal, found: Rate, reporting: str, rounding: str
) -> ConvertedTotal | None:
    """One total converted (None: the result would leave the money domain)."""
    try:
        total, available = (
            Money(convert(money.amount, found, reporting, rounding), reporting)
            for money in (original.total, original.available)
        )
    except (ValueError, ArithmeticError):  # past the money domain, or the digits it allows
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
    for each in totals:
        by_kind.setdefault(each.kind, []).append(each)
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
        while True:  # parts that together leave the money domain: the largest unconverted
            try:
                total, available = _sums(converted, reporting)
                break
            except ValueError:
                largest = max(converted, key=lambda c: abs(c.total.amount))
                converted.remove(largest)
                unconverted.append(largest.original)
        answer.append(
            ReportingTotal(
                kind,
                total,
                available,
                any(c.approximate for c in converted),
                rounding,
                tuple(converted),
                tuple(unconverted),
            )
        )
    return answer


def _sums(parts: Iterable[ConvertedTotal], reporting: str) -> tuple[Money, Money]:
    """The parts' total and available sums (ValueError: past the money domain)."""
    listed = list(parts)
    with localcontext(DIVISION):
        total = sum((c.total.amount for c in listed), Decimal(0))
        available = sum((c.available.amount for c in listed), Decimal(0))
    return Money(total, reporting), Money(available, reporting)
