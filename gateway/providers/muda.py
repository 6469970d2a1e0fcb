"""Muda Pay: Ugandan ledger balances behind a token exchange.

`POST /v1/clients/oauth/token` trades the api/secret key pair for a JWT that expires after
`expires_in` seconds. The token is cached until shortly before then; concurrent callers
share one refresh, and a 401 on a read refreshes once and retries once. The envelope's own
`status` is authoritative (HTTP 200 may carry a failure); a balance failure (400 "Failed
to fetch balances") means the provider is unavailable, not that the caller erred.
Balances are 7-decimal strings; `c`-prefixed assets are collateral, never cash.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

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
from gateway.providers.base import Adapter
from gateway.providers.reader import JsonReader, NonEmpty, decoder
from gateway.providers.spec import ProviderSpec
from gateway.upstream.channel import Channel
from gateway.upstream.client import UpstreamResponse, status_error

TOKEN_PATH = "/v1/clients/oauth/token"
BALANCE_PATH = "/v1/payment/balance"
REFRESH_MARGIN_SECONDS = 60.0
TOKEN_LIFETIME_LIMIT_SECONDS = 30 * 86_400  # the docs say 7200; a longer one is refused
CURRENCY_COUNTRY = {"UGX": "UG", "KES": "KE", "TZS": "TZ"}


def effective_status(response: UpstreamResponse) -> int:
    """The envelope's own `status` when the body has one, else the HTTP status."""
    try:
        body = json.loads(response.body)
    except ValueError:
        return response.status
    status = body.get("status") if isinstance(body, dict) else None
    if isinstance(status, int) and not isinstance(status, bool):
        return status
    return response.status


def envelope_data(reader: JsonReader, response: UpstreamResponse, failure_status: int) -> Any:
    """`data` of a successful envelope; otherwise the typed error for its `status`.

    `failure_status` says how to read a body-level 400 (a failed balance fetch is the
    provider's trouble, not the caller's)."""
    if not 200 <= response.status < 300:
        status = effective_status(response)
        if status == 200:  # an error status over a body that claims success
            status = response.status
    else:
        body = reader.object(reader.loads(response.body), "body")
        number = reader.number(body, "status", "body")
        if number == 200:
            return body.get("data")
        status = int(number) if number == number.to_integral() else 0
    raise status_error(reader.context, failure_status if status == 400 else status)


def asset_of(reader: JsonReader, item: Mapping[str, Any], where: str) -> Asset:
    return asset_from(
        reader,
        reader.string(item, "asset_code", where),
        item.get("currency"),
        reader.optional_string(item, "asset_issuer", where),
        where,
    )


def asset_from(
    reader: JsonReader, code: str, currency_value: Any, issuer: str | None, where: str
) -> Asset:
    currency = reader.currency(currency_value, f"{where}.currency")
    collateral = code == "c" + currency
    if code not in (currency, "c" + currency):
        reader.fail(f"{where}.asset_code: does not match its currency")
    return Asset(
        code=code,
        currency=currency,
        kind=AssetKind.COLLATERAL if collateral else AssetKind.CASH,
        issuer=issuer,
    )


class Envelope(msgspec.Struct):
    """`{"status": <int>, "message", "data"}`: `data` is read once `status` says 200."""

    status: Any
    data: msgspec.Raw = msgspec.Raw()


class BalanceItem(msgspec.Struct):
    """One ledger balance, as documented: `balance` is a decimal *string*."""

    asset_code: NonEmpty
    balance: Any
    currency: Any = None
    asset_issuer: NonEmpty | None = None


ENVELOPE: msgspec.json.Decoder[Envelope] = decoder(Envelope)
BALANCE_ITEMS: msgspec.json.Decoder[list[BalanceItem]] = decoder(list[BalanceItem])


def parse_balances(
    response: UpstreamResponse, account: AccountConfig, context: UpstreamContext
) -> tuple[Balance, ...]:
    reader = JsonReader(context)
    if not 200 <= response.status < 300:
        envelope_data(reader, response, failure_status=503)  # raises its status's error
    body = reader.decode(response.body, ENVELOPE)
    number = reader.number_value(body.status, "body.status")
    if number != 200:
        status = int(number) if number == number.to_integral() else 0
        raise status_error(reader.context, 503 if status == 400 else status)
    if not body.data:
        reader.fail("data: expected an array, got NoneType")
    balances = []
    items = reader.decode(body.data, BALANCE_ITEMS)
    for i, item in enumerate(items):
        where = f"data[{i}]"
        asset = asset_from(reader, item.asset_code, item.currency, item.asset_issuer, where)
        # A Stellar-style ledger balance is never negative: one that is, is a bad response.
        amount = reader.money(item.balance, f"{where}.balance", written_as="string", negative=False)
        money = Money.checked(amount, asset.currency)
        balances.append(
            Balance(
                id=f"{account.id}:{asset.code}:{asset.issuer or ''}",
                asset=asset,
                total=money,
                available=money,
                country=COUNTRIES.get(CURRENCY_COUNTRY.get(asset.currency, "")),
            )
        )
    if len({b.id for b in balances}) != len(balances):
        reader.fail("data: the same asset and issuer twice")
    return tuple(balances)


STATEMENT_PATH = "/v1/payment/statement"
# The documented statuses (SUCCESS, PENDING, INITIATED, failed, MINT_FAILED), any case,
# and a few plain synonyms [assume]; anything else is UNKNOWN with its raw value kept.
STATUSES = {
    "success": TransactionStatus.SUCCEEDED,
    "pending": TransactionStatus.PENDING,
    "initiated": TransactionStatus.PENDING,
    "failed": TransactionStatus.FAILED,
    "mint_failed": TransactionStatus.FAILED,
    "completed": TransactionStatus.SUCCEEDED,
    "cancelled": TransactionStatus.CANCELLED,
    "refunded": TransactionStatus.REFUNDED,
    "reversed": TransactionStatus.REFUNDED,
}
# trans_type: PUSH pays out, PULL collects, BANK_DEPOSIT comes in, SWAP exchanges (no side).
DIRECTIONS = {
    "PUSH": Direction.DEBIT,
    "PULL": Direction.CREDIT,
    "BANK_DEPOSIT": Direction.CREDIT,
}


def parse_statement(
    response: UpstreamResponse, account: AccountConfig, context: UpstreamContext
) -> TransactionPage:
    """The whole statement (the upstream does not paginate), newest first. Each row as the
    docs list it: `trans_id` (the provider's id), `reference_id` (the client's), `trans_type`,
    `asset_code` (a `c…` code is a collateral movement, not cash), 7-decimal `amount` and a
    `fee` string, `sender_account` / `receiver_account`, `service_name`, `status`,
    `created_at` (ISO-8601, Z). A failed fetch (`400 Failed to fetch transaction history`)
    is the provider's trouble, as the balance's is."""
    reader = JsonReader(context)
    rows = []
    for i, item in enumerate(reader.array(envelope_data(reader, response, 503), "data")):
        where = f"data[{i}]"
        row = reader.object(item, where)
        asset = asset_of(reader, row, where)
        kind = reader.string(row, "trans_type", where)
        direction = DIRECTIONS.get(kind.upper())
        raw_status = reader.optional_string(row, "status", where)
        fee = (
            reader.amount(row, "fee", where, written_as="string")
            if row.get("fee") is not None
            else None
        )
        sender = reader.optional_string(row, "sender_account", where)
        receiver = reader.optional_string(row, "receiver_account", where)
        counterparty = receiver if direction is Direction.DEBIT else sender if direction else None
        rows.append(
            Transaction.of(
                account.id,
                reader.string(row, "trans_id", where),
                reference=reader.optional_string(row, "reference_id", where),
                type=kind,
                status=map_status(raw_status, STATUSES),
                raw_status=raw_status,
                amount=Money(
                    reader.amount(row, "amount", where, written_as="string"), asset.currency
                ),
                fee=Money(fee, asset.currency) if fee is not None else None,
                created_at=reader.timestamp(
                    reader.field(row, "created_at", where), f"{where}.created_at", account.timezone
                ),
                direction=direction,
                initiator=sender,
                recipient=receiver,
                counterparty=counterparty,
                asset=asset,
                channel=reader.optional_string(row, "service_name", where),
                country=COUNTRIES.get(CURRENCY_COUNTRY.get(asset.currency, "")),
            )
        )
    ordered = sorted(rows, key=lambda t: t.position, reverse=True)
    return TransactionPage(tuple(ordered), None, len(ordered))


@dataclass(frozen=True)
class Token:
    value: str
    expires_at: float


def parse_token(response: UpstreamResponse, context: UpstreamContext, now: float) -> Token:
    reader = JsonReader(context)
    data = reader.object(envelope_data(reader, response, failure_status=401), "data")
    expires_in = reader.integer(data, "expires_in", "data", TOKEN_LIFETIME_LIMIT_SECONDS)
    if expires_in <= 0:
        reader.fail("data.expires_in: not positive")
    return Token(reader.string(data, "access_token", "data"), now + expires_in)


class TokenCache:
    """One cached token per account; one refresh at a time, shared by every waiter."""

    def __init__(self, fetch: Callable[[], Awaitable[Token]], clock: Clock) -> None:
        self._fetch = fetch
        self._clock = clock
        self._token: Token | None = None
        self._lock = asyncio.Lock()

    def _usable(self, token: Token | None) -> bool:
        return token is not None and self._clock() < token.expires_at - REFRESH_MARGIN_SECONDS

    async def get(self) -> str:
        if self._usable(self._token):
            assert self._token is not None
            return self._token.value
        async with self._lock:
            if not self._usable(self._token):
                self._token = await self._fetch()
            assert self._token is not None
            return self._token.value

    def reject(self, value: str) -> None:
        """The upstream refused `value`: forget it, unless a newer token replaced it."""
        if self._token is not None and self._token.value == value:
            self._token = None


class Muda(Adapter):
    def __init__(self, account: AccountConfig, channel: Channel, clock: Clock) -> None:
        super().__init__(account, channel, clock)
        self.tokens = TokenCache(self._exchange, clock)

    async def _exchange(self) -> Token:
        response = await self.channel.send(
            "POST",
            self.url(TOKEN_PATH),
            headers={"Accept": "application/json"},
            json_body={
                "api_key": self.account.secret("api_key"),
                "secret_key": self.account.secret("secret_key"),
            },
            idempotent=True,  # a token exchange may be repeated safely
        )
        self._raise_for_transport_status(response)
        return parse_token(response, self.context, self.clock())

    def _raise_for_transport_status(self, response: UpstreamResponse) -> None:
        """Statuses that mean the same at HTTP level whatever the body says (with Retry-After)."""
        if response.status in (403, 429) or response.status >= 500:
            self.channel.raise_for_status(response)

    async def _get(self, path: str) -> UpstreamResponse:
        """A read with the current token; on 401, one refresh and one retry."""
        token = await self.tokens.get()
        response = await self._send_get(path, token)
        if effective_status(response) == 401:
            self.tokens.reject(token)
            response = await self._send_get(path, await self.tokens.get())
        self._raise_for_transport_status(response)
        return response

    async def _send_get(self, path: str, token: str) -> UpstreamResponse:
        return await self.channel.send(
            "GET",
            self.url(path),
            headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
        )

    async def fetch_balances(self) -> tuple[Balance, ...]:
        response = await self._get(BALANCE_PATH)
        return parse_balances(response, self.account, self.context)

    async def transaction_page(self, flt: TransactionFilter, page: int) -> TransactionPage:
        """One page: the statement, fetched whole (the gateway filters and pages it)."""
        return parse_statement(await self._get(STATEMENT_PATH), self.account, self.context)


SPEC = ProviderSpec(
    kind=ProviderKind("muda"),
    factory=Muda,
    required_credentials=frozenset({"api_key", "secret_key"}),
    capabilities=(Capability.BALANCE, Capability.TRANSACTIONS),
    calls_per_minute=100,  # Muda's documented quota: the budget stops us before its 429
    calls_per_day=5000,
    # [doc] PROVIDERS.md: asset `X` is cash in currency X, `cX` collateral in X (cUGX is in
    # UGX); a balance's key is `<asset code>:<issuer>` (`cUGX:issuer_ugx`).
    asset_currency=lambda code: code.removeprefix("c"),
    balance_currency=lambda key: key.partition(":")[0].removeprefix("c"),
    coverage=lambda kind: StatementCoverage.BOTH,  # PUSH out, PULL and BANK_DEPOSIT in
    funding_types=frozenset({"BANK_DEPOSIT"}),
)
