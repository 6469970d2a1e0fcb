"""Paymob Bills: Egyptian bill-payment balance, signed per request with HMAC-SHA256.

Signing (the provider's documented steps): timestamp `YYYYMMDDTHHmm` (UTC, minute
precision); message = method + path + public key + timestamp + a fresh UUID nonce, with no
separator; signature = hex HMAC-SHA256(secret key, message); header
`Authorization: base64("<public>.<timestamp>.<signature>.<nonce>")`. The path is the one
sent, trailing slash included, query string excluded. `GET /api/v1/balance/` answers a bare
object of JSON floats without currency (EGP from configuration); the available commission
is a balance of its own (kind COMMISSION).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode, urlsplit
from zoneinfo import ZoneInfo

import msgspec

from gateway.clock import Clock
from gateway.config.accounts import AccountConfig
from gateway.domain import (
    COUNTRIES,
    Asset,
    AssetKind,
    Balance,
    Capability,
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
from gateway.providers.reader import JsonReader, decoder
from gateway.providers.spec import ProviderSpec
from gateway.upstream.channel import Channel

BALANCE_PATH = "/api/v1/balance/"


def timestamp_of(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y%m%dT%H%M")


def signature_header(
    method: str, path: str, public_key: str, secret_key: str, timestamp: str, nonce: str
) -> str:
    message = f"{method.upper()}{path}{public_key}{timestamp}{nonce}"
    digest = hmac.new(secret_key.encode(), message.encode(), hashlib.sha256).hexdigest()
    token = f"{public_key}.{timestamp}.{digest}.{nonce}"
    return base64.b64encode(token.encode()).decode()


class BalanceBody(msgspec.Struct):
    """`GET /api/v1/balance/`: a bare object; both amounts are JSON numbers."""

    amount_available: Any
    available_commission: Any


BALANCE: msgspec.json.Decoder[BalanceBody] = decoder(BalanceBody)


def parse_balances(
    raw: bytes, account: AccountConfig, context: UpstreamContext
) -> tuple[Balance, ...]:
    reader = JsonReader(context)
    body = reader.decode(raw, BALANCE)
    currency = account.currency or "EGP"
    country = COUNTRIES.get(account.country or "EG")
    lines = (
        ("available", "body.amount_available", body.amount_available, AssetKind.CASH),
        (
            "commission",
            "body.available_commission",
            body.available_commission,
            AssetKind.COMMISSION,
        ),
    )
    balances = []
    for name, where, value, kind in lines:
        # Shown as they are, negative included (refunds and chargebacks can overdraw an
        # account) [assume: the docs say nothing either way].
        money = Money(reader.money(value, where), currency)
        balances.append(
            Balance(
                id=f"{account.id}:{name}:{currency}",
                asset=Asset(code=currency, currency=currency, kind=kind),
                country=country,
                total=money,
                available=money,
            )
        )
    return tuple(balances)


TRANSACTIONS_PATH = "/api/v1/balance_transactions/"
MAX_COUNT = 10**12  # a row count past this is not a count
PAGE_SIZE = 50  # the upstream's default and maximum
CAIRO = ZoneInfo("Africa/Cairo")
# The documented values (on the sibling bill-payments list): SUCCESS, FAIL, PENDING and
# AMBIGUOUS (the outcome is not known yet: pending, never UNKNOWN). The others are kept from
# before, harmless if never sent.
STATUSES = {
    "success": TransactionStatus.SUCCEEDED,
    "successful": TransactionStatus.SUCCEEDED,
    "pending": TransactionStatus.PENDING,
    "ambiguous": TransactionStatus.PENDING,
    "fail": TransactionStatus.FAILED,
    "failed": TransactionStatus.FAILED,
    "failure": TransactionStatus.FAILED,
    "cancelled": TransactionStatus.CANCELLED,
    "refunded": TransactionStatus.REFUNDED,
}
DIRECTIONS = {
    "card": Direction.CREDIT,
    "accept_balance": Direction.CREDIT,
    "commission_withdrawal": Direction.DEBIT,
}


def cairo_day(moment: datetime) -> str:
    """The upstream's date filters are inclusive calendar days in Africa/Cairo."""
    return moment.astimezone(CAIRO).date().isoformat()


def transaction_query(flt: TransactionFilter, page: int) -> dict[str, str]:
    params = {"page": str(page), "size": str(PAGE_SIZE)}
    if flt.created_from:
        params["date_from"] = cairo_day(flt.created_from)
    if flt.created_to:
        params["date_to"] = cairo_day(flt.created_to)
    if flt.types is not None and len(flt.types) == 1:
        params["transaction_type"] = next(iter(flt.types))
    if flt.reference:
        params["transaction_ref"] = flt.reference
    return params


def parse_transactions(
    raw: bytes, account: AccountConfig, context: UpstreamContext, page: int
) -> TransactionPage:
    """A DRF page: `count`, `next`/`previous` (URLs: never followed, only `next`'s presence
    is read), `results`."""
    reader = JsonReader(context)
    body = reader.object(reader.loads(raw), "body")
    count = reader.integer(body, "count", "body", MAX_COUNT)
    currency = account.currency or "EGP"
    country = COUNTRIES.get(account.country or "EG")
    rows = []
    for i, item in enumerate(reader.array(reader.field(body, "results", "body"), "results")):
        where = f"results[{i}]"
        row = reader.object(item, where)
        reference = reader.string(row, "transaction_ref", where)  # 25 digits: kept a string
        kind = reader.string(row, "transaction_type", where)
        raw_status = reader.optional_string(row, "status", where)
        rows.append(
            Transaction.of(
                account.id,
                reference,  # the provider's 25-digit ref: its id, and what clients quote
                reference=reference,
                type=kind,
                status=map_status(raw_status, STATUSES),
                raw_status=raw_status,
                amount=Money(reader.amount(row, "amount", where), currency),
                created_at=reader.timestamp(
                    reader.field(row, "date_created", where), f"{where}.date_created", UTC
                ),
                direction=DIRECTIONS.get(kind),
                initiator=reader.optional_string(row, "initiator", where),
                recipient=reader.optional_string(row, "recipient", where),
                # A commission withdrawal moves the commission balance, not cash.
                asset=Asset(
                    currency,
                    currency,
                    AssetKind.COMMISSION if kind == "commission_withdrawal" else AssetKind.CASH,
                ),
                country=country,
            )
        )
    next_page = page + 1 if body.get("next") else None
    return TransactionPage(tuple(rows), next_page, count)


class PaymobBills(Adapter):
    def __init__(
        self,
        account: AccountConfig,
        channel: Channel,
        clock: Clock,
        nonce: Callable[[], str] = lambda: str(uuid.uuid4()),
    ) -> None:
        super().__init__(account, channel, clock)
        self.nonce = nonce

    def headers(self, method: str, url: str) -> dict[str, str]:
        now = datetime.fromtimestamp(self.clock(), UTC)
        authorization = signature_header(
            method,
            urlsplit(url).path,
            self.account.secret("public_key"),
            self.account.secret("secret_key"),
            timestamp_of(now),
            self.nonce(),
        )
        return {
            "Authorization": authorization,
            "Accept": "application/json",
            "Accept-Language": "en",
        }

    async def fetch_balances(self) -> tuple[Balance, ...]:
        url = self.url(BALANCE_PATH)
        body = await get_ok(self.channel, url, lambda: self.headers("GET", url))
        return parse_balances(body, self.account, self.context)

    async def transaction_page(self, flt: TransactionFilter, page: int) -> TransactionPage:
        url = self.url(TRANSACTIONS_PATH)
        full = f"{url}?{urlencode(transaction_query(flt, page))}"  # signed without the query
        body = await get_ok(self.channel, full, lambda: self.headers("GET", full))
        return parse_transactions(body, self.account, self.context, page)


SPEC = ProviderSpec(
    kind=ProviderKind("paymob_bills"),
    factory=PaymobBills,
    required_credentials=frozenset({"public_key", "secret_key"}),
    default_currency="EGP",
    capabilities=(Capability.BALANCE, Capability.TRANSACTIONS),
    # Balance transactions list money in (card, accept_balance) and the commission's
    # withdrawals; bill payments, which spend the balance, are another list [doc].
    reporting_timezone="Africa/Cairo",
    coverage=lambda kind: (
        StatementCoverage.DEBITS if kind is AssetKind.COMMISSION else StatementCoverage.CREDITS
    ),
    funding_types=frozenset({"card", "accept_balance"}),
)
