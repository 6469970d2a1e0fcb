"""Magma OnePay: mobile-money floats per country, Bearer private key (+ X-User-Secret).

Envelope `{"code": 200, "message": "OK", "data": [...]}` (a bare array is accepted too).
`code` is the HTTP status in the envelope but the ISO country in items; DR Congo comes as
the non-ISO `RDC` (mapped to `CD`, raw kept). Timestamps have no zone: the account's
`timezone` (UTC by default) applies. `pending = balance - balance_available`.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta, tzinfo
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

import msgspec

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
    StatementCoverage,
    Transaction,
    TransactionFilter,
    TransactionPage,
    TransactionStatus,
    map_status,
)
from gateway.errors import UpstreamContext
from gateway.providers.base import Adapter, get_ok
from gateway.providers.reader import JsonReader, NonEmpty, decoder
from gateway.providers.spec import ProviderSpec
from gateway.upstream.client import status_error

BALANCE_PATH = "/v1/misc/balance"
NON_ISO_COUNTRIES = {"RDC": "CD"}


class BalanceItem(msgspec.Struct):
    """One country's float, as documented: `balance` (the total) and `balance_available`
    are JSON numbers (`JsonReader.money` reads them); other fields are ignored."""

    code: NonEmpty
    balance: Any
    balance_available: Any
    name: NonEmpty | None = None
    prefix: NonEmpty | None = None
    currency: Any = None
    last_updated_at: Any = None


class Envelope(msgspec.Struct):
    """`{"code": 200, "message", "data": [...]}`: `data` is read once `code` says 200."""

    code: Any
    data: msgspec.Raw = msgspec.Raw()


BalanceBody = Envelope | list[BalanceItem]  # the envelope, or a bare array (the prose)
BALANCE_BODY: msgspec.json.Decoder[BalanceBody] = decoder(BalanceBody)
BALANCE_ITEMS: msgspec.json.Decoder[list[BalanceItem]] = decoder(list[BalanceItem])


def country_of(reader: JsonReader, item: BalanceItem, where: str) -> Country:
    raw_code = item.code
    code = NON_ISO_COUNTRIES.get(raw_code.upper(), raw_code.upper())
    if len(code) != 2 or not code.isalpha():
        reader.fail(f"{where}.code: not a country code")
    known = COUNTRIES.get(code)
    return Country(
        code=code,
        name=item.name or (known.name if known else code),
        dial_prefix=item.prefix,
        currency=reader.currency(item.currency, f"{where}.currency"),
        raw_code=raw_code if raw_code != code else None,
    )


def balance_of(
    reader: JsonReader, item: BalanceItem, where: str, account: AccountConfig
) -> Balance:
    country = country_of(reader, item, where)
    currency = country.currency or ""
    # A payout float can be overdrawn (reversals, fees): a negative balance is shown as
    # it is [assume: the docs show none].
    total = reader.money(item.balance, f"{where}.balance")
    available = reader.money(item.balance_available, f"{where}.balance_available")
    updated = item.last_updated_at
    return Balance(
        id=f"{account.id}:{country.code}:{currency}",
        asset=Asset(code=currency, currency=currency, kind=AssetKind.CASH),
        country=country,
        total=Money.checked(total, currency),
        available=Money.checked(available, currency),
        # Exact: two in-domain amounts differ by at most 16 digits before the point.
        pending=Money.checked(total - available, currency),
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
        check_code(reader, reader.number(body, "code", "body"))
        body = reader.field(body, "data", "body")
    return reader.array(body, "data")


def check_code(reader: JsonReader, code: Decimal) -> None:
    """The envelope's `code`: 200, or that status's error."""
    if code != 200:
        raise status_error(reader.context, int(code) if code == code.to_integral() else 0)


def parse_balances(
    raw: bytes, account: AccountConfig, context: UpstreamContext
) -> tuple[Balance, ...]:
    reader = JsonReader(context)
    body = reader.decode(raw, BALANCE_BODY)
    if isinstance(body, Envelope):
        check_code(reader, reader.number_value(body.code, "body.code"))
        if not body.data:
            reader.fail("body: missing field 'data'")
        items = reader.decode(body.data, BALANCE_ITEMS)
    else:
        items = body  # a bare array
    balances = tuple(
        balance_of(reader, item, f"data[{i}]", account) for i, item in enumerate(items)
    )
    if len({b.id for b in balances}) != len(balances):
        reader.fail("data: the same country and currency twice")
    return balances


HISTORY_PATH = "/v1/payout/transfer/history"
STATUSES = {
    "new": TransactionStatus.PENDING,
    "pending": TransactionStatus.PENDING,
    "success": TransactionStatus.SUCCEEDED,
    "failed": TransactionStatus.FAILED,
    "refunded": TransactionStatus.REFUNDED,
    "cancelled": TransactionStatus.CANCELLED,
}
# The upstream's `status` filter, for a client's filter that names exactly one status with
# exactly one raw value (PENDING is two: `new` and `pending`, so it is filtered here only).
UPSTREAM_STATUS = {
    status: raw for raw, status in STATUSES.items() if list(STATUSES.values()).count(status) == 1
}


def windows(
    flt: TransactionFilter, now: datetime, default_days: int, window_days: int
) -> list[tuple[datetime, datetime]]:
    """The filter's range as upstream ranges of at most `window_days`, newest first: page n
    of the history is window n. Without dates the provider answers *today* only, so the
    gateway asks for the last `default_days` (the account's `history_days`); no maximum
    range is documented, so the windows (`history_window_days`) are the gateway's choice."""
    end = flt.created_to or now
    start = flt.created_from or end - timedelta(days=default_days)
    spans = []
    while end > start:
        spans.append((max(start, end - timedelta(days=window_days)), end))
        end = spans[-1][0] - timedelta(seconds=1)
    return spans or [(start, start)]


def upstream_time(moment: datetime, zone: tzinfo) -> str:
    return moment.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S")


def upstream_filters(flt: TransactionFilter) -> dict[str, str]:
    """What the upstream can filter exactly (the gateway filters exactly anyway)."""
    found: dict[str, str] = {}
    if flt.statuses is not None and len(flt.statuses) == 1:
        (status,) = flt.statuses
        if status in UPSTREAM_STATUS:
            found["status"] = UPSTREAM_STATUS[status]
    if flt.currencies is not None and len(flt.currencies) == 1:
        (found["currency"],) = flt.currencies
    if flt.channels is not None and len(flt.channels) == 1:
        (found["channel"],) = flt.channels
    return found


def parse_history(
    raw: bytes, account: AccountConfig, context: UpstreamContext
) -> tuple[Transaction, ...]:
    """Payout rows as the docs list them: `transfer_token` (the provider's id),
    `merchant_transaction_id` (the client's), `receiver_account` and the receiver's names,
    `country_code` and `currency`, `amount` (a JSON number; no fee field), `channel`,
    `status`, `created_at` and `done_at` (ISO-8601 with Z — unlike the balance's zone-less
    `last_updated_at`). Every row is money out."""
    reader = JsonReader(context)
    rows = []
    for i, item in enumerate(envelope_items(reader, raw)):
        where = f"data[{i}]"
        row = reader.object(item, where)
        currency = reader.currency(row.get("currency"), f"{where}.currency")
        raw_status = reader.optional_string(row, "status", where)
        receiver = reader.optional_string(row, "receiver_account", where)
        names = [
            reader.optional_string(row, f"receiver_{part}_name", where)
            for part in ("first", "last")
        ]
        raw_country = reader.optional_string(row, "country_code", where)
        code = NON_ISO_COUNTRIES.get((raw_country or "").upper(), (raw_country or "").upper())
        country = COUNTRIES.get(code)
        done = row.get("done_at")
        rows.append(
            Transaction.of(
                account.id,
                reader.string(row, "transfer_token", where),
                reference=reader.optional_string(row, "merchant_transaction_id", where),
                type="payout",
                status=map_status(raw_status, STATUSES),
                raw_status=raw_status,
                amount=Money(reader.amount(row, "amount", where), currency),
                created_at=reader.timestamp(
                    reader.field(row, "created_at", where), f"{where}.created_at", account.timezone
                ),
                completed_at=None
                if done is None
                else reader.timestamp(done, f"{where}.done_at", account.timezone),
                direction=Direction.DEBIT,
                recipient=receiver,
                counterparty=receiver,
                counterparty_name=" ".join(n for n in names if n) or None,
                asset=Asset(currency, currency, AssetKind.CASH),
                channel=reader.optional_string(row, "channel", where),
                country=dataclasses.replace(country, raw_code=raw_country)
                if country is not None and raw_country != code
                else country,
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
        now = datetime.fromtimestamp(self.clock(), UTC)
        account = self.account
        spans = windows(flt, now, account.history_days, account.history_window_days)
        if page > len(spans):
            return TransactionPage((), None)
        start, end = spans[page - 1]
        zone = self.account.timezone
        query = urlencode(
            {
                "start_date": upstream_time(start, zone),
                "end_date": upstream_time(end, zone),
                **upstream_filters(flt),
            }
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
    # [doc] PROVIDERS.md: each item is one country's float in its `currency`; a balance's
    # asset code is that currency, and its key is `<country>:<currency>` (`GH:GHS`).
    asset_currency=lambda code: code,
    balance_currency=lambda key: key.partition(":")[2] or None,
    coverage=lambda kind: StatementCoverage.DEBITS,  # every row is a payout [doc]
)
