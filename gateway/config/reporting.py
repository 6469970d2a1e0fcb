"""`[reporting]`: the reporting currency totals are also given in, how they are rounded,
and the rates other currencies convert by — a static table with its as-of date:

    [reporting]
    currency = "EUR"          # the dashboard's reporting currency (none: not shown)
    rounding = "half-even"    # or "half-up": to the reporting currency's minor unit
    as_of = 2024-06-03        # the date the rates were taken (required with rates)
    [reporting.rates]         # units of each currency per one `base` (default: currency)
    USD = "1.0842"

Or, instead of `rates`, a rates provider over HTTP — `rates_url`, answering JSON in the
shape of Frankfurter's (`{"base": "EUR", "date": "2024-06-03", "rates": {"USD": 1.0842}}`),
read through the upstream channel (deadline, retries, breaker) and the shared cache for
`rates_fresh_seconds`. Its URL carries no credentials.

The CFA francs need no rate: 1 EUR = 655.957 XOF = 655.957 XAF, fixed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

from gateway.config.checker import Checker
from gateway.domain import is_known_currency

# Units of each currency per one euro, fixed by law (the CFA francs' parity).
EURO_PARITY: dict[str, Decimal] = {
    "EUR": Decimal(1),
    "XOF": Decimal("655.957"),
    "XAF": Decimal("655.957"),
}
REPORTING_KEYS = {
    "currency",
    "rounding",
    "as_of",
    "base",
    "rates",
    "rates_url",
    "rates_fresh_seconds",
    "rates_timeout_seconds",
}
ROUNDING_MODES = ("half-even", "half-up")
RATE = re.compile(r"[0-9]+(\.[0-9]+)?")
# A rate's domain: units of a currency per one base unit, from a millionth to a billion
# (today's extremes are about 0.3 and 50,000 per euro), at most 20 significant digits.
# Outside it a rate is a mistake or a hostile answer, and converting by it would leave the
# money domain: it is refused (configuration) or skipped (a rates provider).
RATE_MIN, RATE_MAX, RATE_DIGITS = Decimal("0.000001"), Decimal(1_000_000_000), 20


def rate_in_domain(rate: Decimal) -> bool:
    return (
        rate.is_finite()
        and RATE_MIN <= rate <= RATE_MAX
        and len(rate.normalize().as_tuple().digits) <= RATE_DIGITS
    )


@dataclass(frozen=True)
class RateTable:
    """Units of each currency per one unit of `base`, as of `as_of` (the base itself is 1).
    `source` names where it came from, as a caller is shown it."""

    base: str = "EUR"
    as_of: date | None = None
    rates: Mapping[str, Decimal] = field(default_factory=dict)
    source: str = "configuration"

    def per_base(self, currency: str) -> tuple[Decimal, bool] | None:
        """Units of `currency` per one base unit, and whether that is exact (None: no
        rate). The base is exact; so is a CFA franc against a base in the euro's group."""
        if currency == self.base:
            return Decimal(1), True
        if currency in EURO_PARITY and self.base in EURO_PARITY:
            return EURO_PARITY[currency] / EURO_PARITY[self.base], True
        rate = self.rates.get(currency)
        return None if rate is None else (rate, False)


@dataclass(frozen=True)
class ReportingSettings:
    currency: str | None = None  # None: no reporting currency unless a caller names one
    rounding: str = "half-even"
    table: RateTable = field(default_factory=RateTable)
    rates_url: str | None = None  # a rates provider instead of `table`'s rates
    rates_fresh_seconds: float = 3600.0
    rates_timeout_seconds: float = 5.0


def parse_reporting(check: Checker, raw: Mapping[str, Any]) -> ReportingSettings:
    where = "reporting"
    check.unknown(raw, REPORTING_KEYS, where)
    currency = raw.get("currency")
    if currency is not None and not is_known_currency(currency):
        check.add(f"{where}.currency", f"unknown currency {currency!r}", 'e.g. currency = "EUR"')
        currency = None
    rounding = check.choice(raw, "rounding", where, ROUNDING_MODES)
    base = raw.get("base", currency or "EUR")
    if not is_known_currency(base):
        check.add(f"{where}.base", f"unknown currency {base!r}", 'e.g. base = "EUR"')
        base = "EUR"
    rates: dict[str, Decimal] = {}
    table = check.table(raw, "rates", f"{where}.rates")
    for code, value in table.items():
        if not is_known_currency(code):
            check.add(f"{where}.rates.{code}", "unknown currency", "use an ISO 4217 code")
        elif (
            not isinstance(value, str)
            or not RATE.fullmatch(value)
            or not rate_in_domain(Decimal(value))
        ):
            check.add(
                f"{where}.rates.{code}",
                "must be a decimal as a string (exact: never a TOML float), from "
                f"{RATE_MIN} to {RATE_MAX:,} with at most {RATE_DIGITS} significant digits",
                f'e.g. {code} = "1.0842"',
            )
        else:
            rates[code] = Decimal(value)
    as_of = raw.get("as_of")
    if isinstance(as_of, str):
        try:
            as_of = date.fromisoformat(as_of)
        except ValueError:
            as_of = False
    if as_of is not None and (not isinstance(as_of, date) or hasattr(as_of, "hour")):
        check.add(f"{where}.as_of", "must be a date", "e.g. as_of = 2024-06-03")
        as_of = None
    if table and as_of is None:
        check.add(f"{where}.as_of", "rates need the date they were taken", "as_of = 2024-06-03")
    rates_url = _rates_url(check, raw.get("rates_url"), bool(table))
    return ReportingSettings(
        currency,
        rounding,
        RateTable(base, as_of, rates),
        rates_url,
        check.number(raw, "rates_fresh_seconds", where, 3600.0, 86_400),
        check.number(raw, "rates_timeout_seconds", where, 5.0, 60),
    )


def _rates_url(check: Checker, url: Any, static: bool) -> str | None:
    """An http(s) URL without credentials in it, and not beside a static table."""
    if url is None:
        return None
    location = "reporting.rates_url"
    parts = urlsplit(url) if isinstance(url, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        check.add(location, "must be an http:// or https:// URL", 'e.g. "https://rates…/latest"')
        return None
    if parts.username or parts.password:
        check.add(location, "must carry no credentials", "remove the user and password")
        return None
    if static:
        check.add(location, "one source of rates: rates_url or [reporting.rates]", "drop one")
        return None
    return str(url)
