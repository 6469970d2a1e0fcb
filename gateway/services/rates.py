"""Where the reporting totals' rates come from: the configuration's static table, or a rates
provider over HTTP (`[reporting] rates_url`).

The provider is read like a balance: through its own upstream channel — the request
deadline, retries for reads, its breaker; given as the one GET it makes, so this layer
loads no HTTP — and the read-through cache: fresh for `rates_fresh_seconds`, one read per
key across replicas sharing Redis, and for a week after served stale while it fails.
Its answer, in the shape of Frankfurter's (ECB reference rates) —
`{"base": "EUR", "date": "2024-06-03", "rates": {"USD": 1.0842}}` — is
read with every number as an exact Decimal from its text; currencies the gateway does not
know are skipped, and so are rates outside the domain (`rate_in_domain`). A provider that
cannot be read leaves only the exact conversions (the CFA francs' parity): every other
currency is then listed as unconverted, never guessed.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Awaitable, Callable
from datetime import date
from decimal import Decimal
from typing import Any, Protocol
from urllib.parse import urlsplit

from gateway.cache import keys
from gateway.cache.read_through import Codec, Freshness, ReadThroughCache
from gateway.clock import request_deadline
from gateway.config.reporting import RATE_MAX, RATE_MIN, RateTable, rate_in_domain
from gateway.domain import is_known_currency
from gateway.errors import UpstreamBadResponse, UpstreamContext, UpstreamError
from gateway.observability import request_trace

log = logging.getLogger("gateway.services.rates")
RATES_STALE_SECONDS = 7 * 86_400.0
RATES = UpstreamContext(provider="rates", account="rates")


class RateSource(Protocol):
    async def table(self) -> RateTable: ...


class StaticRates:
    """The configuration's table, as it is."""

    def __init__(self, table: RateTable) -> None:
        self._table = table

    async def table(self) -> RateTable:
        return self._table


def parse_rates(body: bytes, source: str) -> RateTable:
    """A provider's answer as a table (raises `UpstreamBadResponse` when it is not one)."""
    try:
        data: Any = json.loads(body, parse_float=Decimal, parse_int=Decimal)
        base, day, rates = data["base"], date.fromisoformat(data["date"]), dict(data["rates"])
    except (ValueError, KeyError, TypeError, RecursionError, ArithmeticError) as exc:
        # RecursionError: nesting deeper than the parser goes ("[[[[…")
        raise UpstreamBadResponse(RATES, detail=f"rates: {type(exc).__name__}") from None
    if not is_known_currency(base):
        raise UpstreamBadResponse(RATES, detail="rates: unknown base currency")
    table = {
        code: rate
        for code, rate in rates.items()
        if is_known_currency(code) and isinstance(rate, Decimal) and rate_in_domain(rate)
    }
    if len(table) < sum(1 for code in rates if is_known_currency(code)):
        log.warning("rates provider: rates outside %s to %s skipped", RATE_MIN, RATE_MAX)
    return RateTable(base, day, table, source)


def encode_table(table: RateTable) -> str:
    return json.dumps(
        {
            "base": table.base,
            "as_of": table.as_of.isoformat() if table.as_of else None,
            "rates": {code: str(rate) for code, rate in table.rates.items()},
            "source": table.source,
        }
    )


def decode_table(text: str) -> RateTable | None:
    try:
        data = json.loads(text)
        as_of = date.fromisoformat(data["as_of"]) if data["as_of"] else None
        rates = {code: Decimal(rate) for code, rate in data["rates"].items()}
        return RateTable(data["base"], as_of, rates, data["source"])
    except (ValueError, KeyError, TypeError, ArithmeticError):
        return None  # written by another version: a miss


TABLES = Codec[RateTable](encode_table, decode_table)


class HttpRates:
    def __init__(
        self,
        get: Callable[[], Awaitable[bytes]],
        url: str,
        cache: ReadThroughCache,
        fresh_seconds: float,
        deadline_seconds: float,
    ) -> None:
        """`get`: one GET of `url` through its channel — the body of a 2xx, or raises."""
        self._get = get
        self._cache = cache
        self._freshness = Freshness(fresh_seconds, RATES_STALE_SECONDS)
        self._deadline_seconds = deadline_seconds
        self._key = keys.rates(hashlib.sha256(url.encode()).hexdigest())
        self.source = f"rates provider {urlsplit(url).hostname}"  # never its path or query

    async def table(self) -> RateTable:
        """The provider's table (fresh, or stale while it fails); without it, no rates."""
        try:
            with request_deadline(self._deadline_seconds), request_trace.source_read("rates"):
                cached = await self._cache.read(
                    self._key, RATES.account, self._freshness, self._fetch, TABLES
                )
        except UpstreamError as exc:
            log.warning("rates provider failed: %s (%s)", exc.code.value, exc.detail or "")
            return RateTable(source=self.source)
        return cached.value

    async def _fetch(self) -> RateTable:
        return parse_rates(await self._get(), self.source)
