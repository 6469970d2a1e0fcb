"""Magma OnePay: mobile-money floats per country, Bearer private key (+ X-User-Secret).

Envelope `{"code": 200, "message": "OK", "data": [...]}` (a bare array is accepted too).
`code` is the HTTP status in the envelope but the ISO country in items; DR Congo comes as
the non-ISO `RDC` (mapped to `CD`, raw kept). Timestamps have no zone: the account's
`timezone` (UTC by default) applies. `pending = balance - balance_available`.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any
from urllib.parse import urlencode

from gateway.config.accounts import AccountConfig
from gateway.domain import (
    COUNTRIES,
    Asset,
    AssetKind,
    Balance,
    Capability,
    Country,
    Direction,
    Money,
    ProviderKind,
    Transaction,
    TransactionFilter,
    TransactionPage,
    TransactionStatus,
    map_status,
)
from gateway.errors import UpstreamContext
from gateway.providers.base import Adapter, get_ok
from gateway.providers.reader import JsonReader
from gateway.providers.spec import ProviderSpec
from gateway.upstream.client import status_error

BALANCE_PATH = "/v1/misc/balance"
NON_ISO_COUNTRIES = {"RDC": "CD"}


def parse_country(reader: JsonReader, item: Any, where: str) -> Country:
    raw_code = reader.string(item, "code", where)
    code = NON_ISO_COUNTRIES.get(raw_code.upper(), raw_code.upper())
    if len(code) != 2 or not code.isalpha():
        reader.fail(f"{where}.code: not a country code")
    known = COUNTRIES.get(code)
    return Country(
        code=code,
        name=reader.optional_string(item, "name", where) or (known.name if known else code),
        dial_prefix=reader.optional_string(item, "prefix", where),
        currency=reader.currency(item.get("currency"), f"{where}.currency"),
        raw_code=raw_code if raw_code != code else None,
    )


def parse_item(reader: JsonReader, item: Any, where: str, account: AccountConfig) -> Balance:
    item = reader.object(item, where)
    country = parse_country(reader, item, where)
    currency = country.currency or ""
    # A payout float can be overdrawn (reversals, fees): a negative balance is shown as
    # it is [assume: the docs show none].
    total = reader.amount(item, "balance", where)
    available = reader.amount(item, "balance_available", where)
    updated = item.get("last_updated_at")
    return Balance(
        id=f"{account.id}:{country.code}:{currency}",
        asset=Asset(code=currency, currency=currency, kind=AssetKind.CASH),
        country=country,
        total=Money(total, currency),
        available=Money(available, currency),
        pending=Money(total - available, currency),
        updated_at=(
            None
            if updated is None
            else reader.timestamp(updated, f"{where}.last_updated_at", account.timezone)
        ),
    )


def envelope_items(reader: JsonReader, raw: bytes) -> list[Any]:
    """`data` of `{"code": 200, "message", "data": [...]}` (or a bare array); a `code` other
    than 200 is that status's error."""
    body = reader.loads(raw)
    if isinstance(body, dict):
        code = reader.number(body, "code", "body")
        if code != 200:
            raise status_error(reader.context, int(code) if code == code.to_integral() else 0)
        body = reader.field(body, "data", "body")
    return reader.array(body, "data")


def parse_balances(
    raw: bytes, account: AccountConfig, context: UpstreamContext
) -> tuple[Balance, ...]:
    reader = JsonReader(context)
    items = envelope_items(reader, raw)
    balances = tuple(
        parse_item(reader, item, f"data[{i}]", account) for i, item in enumerate(items)
    )
    if len({b.id for b in balances}) != len(balances):
        reader.fail("data: the same country and currency twice")
    return balances


HISTORY_PATH = "/v1/payout/transfer/history"
DEFAULT_DAYS = 7
WINDOW_DAYS = 31
STATUSES = {
    "new": TransactionStatus.PENDING,
    "pending": TransactionStatus.PENDING,
    "success": TransactionStatus.SUCCEEDED,
    "failed": TransactionStatus.FAILED,
    "refunded": TransactionStatus.REFUNDED,
    "cancelled": TransactionStatus.CANCELLED,
}


def windows(flt: TransactionFilter, now: datetime) -> list[tuple[datetime, datetime]]:
    """The filter's range (default: the last 7 days) as upstream ranges of at most 31 days,
    newest first: page n of the history is window n."""
    end = flt.created_to or now
    start = flt.created_from or end - timedelta(days=DEFAULT_DAYS)
    spans = []
    while end > start:
        spans.append((max(start, end - timedelta(days=WINDOW_DAYS)), end))
        end = spans[-1][0] - timedelta(seconds=1)
    return spans or [(start, start)]


def upstream_time(moment: datetime, zone: tzinfo) -> str:
    return moment.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S")


def parse_history(
    raw: bytes, account: AccountConfig, context: UpstreamContext
) -> tuple[Transaction, ...]:
    reader = JsonReader(context)
    rows = []
    for i, item in enumerate(envelope_items(reader, raw)):
        where = f"data[{i}]"
        row = reader.object(item, where)
        reference = reader.optional_string(row, "reference", where) or reader.string(
            row, "token", where
        )
        currency = reader.currency(row.get("currency"), f"{where}.currency")
        raw_status = reader.optional_string(row, "status", where)
        rows.append(
            Transaction.of(
                account.id,
                reference,
                type="payout",
                status=map_status(raw_status, STATUSES),
                raw_status=raw_status,
                amount=Money(reader.amount(row, "amount", where), currency),
                fee=Money(reader.amount(row, "fee", where), currency) if "fee" in row else None,
                created_at=reader.timestamp(
                    reader.field(row, "created_at", where), f"{where}.created_at", account.timezone
                ),
                direction=Direction.DEBIT,
                recipient=reader.optional_string(row, "phone", where),
            )
        )
    return tuple(sorted(rows, key=lambda t: t.position, reverse=True))


class MagmaOnePay(Adapter):
    def headers(self) -> dict[str, str]:
        headers = {
            "Authorization": f"Bearer {self.account.secret('private_key')}",
            "Accept": "application/json",
        }
        secret = self.account.optional_secret("secret_key")
        if secret:
            headers["X-User-Secret"] = secret
        return headers

    async def fetch_balances(self) -> tuple[Balance, ...]:
        url = self.url(BALANCE_PATH)
        body = await get_ok(self.channel, url, self.headers())
        return parse_balances(body, self.account, self.context)

    async def transaction_page(self, flt: TransactionFilter, page: int) -> TransactionPage:
        spans = windows(flt, datetime.fromtimestamp(self.clock(), UTC))
        if page > len(spans):
            return TransactionPage((), None)
        start, end = spans[page - 1]
        zone = self.account.timezone
        query = urlencode(
            {"start_date": upstream_time(start, zone), "end_date": upstream_time(end, zone)}
        )
        url = f"{self.url(HISTORY_PATH)}?{query}"
        body = await get_ok(self.channel, url, self.headers())
        rows = parse_history(body, self.account, self.context)
        return TransactionPage(rows, page + 1 if page < len(spans) else None)


SPEC = ProviderSpec(
    kind=ProviderKind("magma_onepay"),
    factory=MagmaOnePay,
    required_credentials=frozenset({"private_key"}),
    optional_credentials=frozenset({"secret_key"}),
    capabilities=(Capability.BALANCE, Capability.TRANSACTIONS),
)
