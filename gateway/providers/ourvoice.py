"""Our Voice: prepaid messaging credit (XOF), static Bearer key.

Envelope `{"data": {"success": true, "message": …, "data": <inner>}}` where `<inner>` is a
JSON-encoded string in the docs and an object in the SDKs: both are accepted; a string that
does not decode is a bad response, never repaired. The balance carries no currency: it comes
from the account's configuration.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC
from decimal import Decimal
from typing import Any

import msgspec

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
    Transaction,
    TransactionStatus,
    map_status,
)
from gateway.errors import UpstreamContext, UpstreamUnavailable
from gateway.providers.base import Adapter, get_ok
from gateway.providers.reader import JsonReader, decoder
from gateway.providers.spec import ProviderSpec

BALANCE_PATH = "/v1/current/balance"
TOPUP_PATH = "/v1/transactions/topUpBalance"
STATUSES = {
    "completed": TransactionStatus.SUCCEEDED,
    "success": TransactionStatus.SUCCEEDED,
    "pending": TransactionStatus.PENDING,
    "failed": TransactionStatus.FAILED,
    "cancelled": TransactionStatus.CANCELLED,
}


def topup_body(amount: Decimal, payment_method: str, payment_id: str, status: str) -> bytes:
    """Built from typed fields (the doc's example repeats payment_method where payment_id is
    meant); the amount goes as a JSON number written from its exact digits."""
    fields = {
        "amount": "__AMOUNT__",
        "payment_method": payment_method,
        "payment_id": payment_id,
        "status": status,
    }
    return json.dumps(fields).replace('"__AMOUNT__"', format(amount, "f")).encode()


def parse_topup(raw: bytes, account: AccountConfig, context: UpstreamContext) -> Transaction:
    """The recorded transaction; any doubt about the body is a bad response (the caller
    treats that as an unknown outcome, never as a failure)."""
    reader = JsonReader(context)
    inner = unwrap(reader, raw)
    tx = reader.object(reader.field(inner, "transaction", "data.data"), "transaction")
    provider_id = reader.string(tx, "id", "transaction")
    currency = reader.currency(
        tx.get("currency", account.currency or "XOF"), "transaction.currency"
    )
    raw_status = reader.optional_string(tx, "status", "transaction")
    return Transaction.of(
        account.id,
        provider_id,
        reference=reader.optional_string(tx, "payment_id", "transaction"),
        type="top_up",
        status=map_status(raw_status, STATUSES),
        raw_status=raw_status,
        amount=Money(reader.amount(tx, "amount", "transaction"), currency),
        created_at=reader.timestamp(
            reader.field(tx, "created_at", "transaction"), "transaction.created_at", UTC
        ),
        direction=Direction.CREDIT,
        payment_method=reader.optional_string(tx, "payment_method", "transaction"),
        asset=Asset(currency, currency, AssetKind.PREPAID_CREDIT),
    )


def unwrap(reader: JsonReader, raw: bytes) -> Mapping[str, Any]:
    """The inner payload of an Our Voice envelope, as an object."""
    outer = reader.object(reader.loads(raw), "body")
    envelope = reader.object(reader.field(outer, "data", "body"), "data")
    success = envelope.get("success", True)  # the balance page's own example omits it
    if success is not True:
        raise UpstreamUnavailable(reader.context, detail="envelope success is not true")
    inner = reader.field(envelope, "data", "data")
    if isinstance(inner, str):
        inner = reader.loads(inner)
    return reader.object(inner, "data.data")


class Inner(msgspec.Struct):
    """The balance page's inner payload: `balance`, a JSON number."""

    balance: Any


class Envelope(msgspec.Struct):
    """`{"success": true, "message", "data": <inner>}`: `data` is read once `success` is."""

    success: Any = True  # the balance page's own example omits it
    data: msgspec.Raw = msgspec.Raw()


class Body(msgspec.Struct):
    data: Envelope


BODY: msgspec.json.Decoder[Body] = decoder(Body)
# A JSON-encoded string (the docs) or an object (the SDKs).
INNER: msgspec.json.Decoder[str | Inner] = decoder(str | Inner)
INNER_TEXT: msgspec.json.Decoder[Inner] = decoder(Inner)


def parse_balance(raw: bytes, account: AccountConfig, context: UpstreamContext) -> Balance:
    reader = JsonReader(context)
    envelope = reader.decode(raw, BODY).data
    if envelope.success is not True:
        raise UpstreamUnavailable(reader.context, detail="envelope success is not true")
    if not envelope.data:
        reader.fail("data: missing field 'data'")
    found = reader.decode(envelope.data, INNER)
    inner = reader.decode(found, INNER_TEXT) if isinstance(found, str) else found
    # Prepaid credit only ever grows by top-ups and shrinks to zero: negative is a bad
    # response [assume: the docs say nothing either way].
    amount = reader.money(inner.balance, "data.data.balance", negative=False)
    currency = account.currency or "XOF"
    money = Money(amount, currency)
    return Balance(
        id=f"{account.id}:credit:{currency}",
        asset=Asset(code=currency, currency=currency, kind=AssetKind.PREPAID_CREDIT),
        total=money,
        available=money,
        country=COUNTRIES.get(account.country or ""),
    )


class OurVoice(Adapter):
    def headers(self) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {self.account.secret('api_key')}",
            "Accept": "application/json",
        }

    async def top_up(self, amount: Decimal, payment_method: str, payment_id: str) -> Transaction:
        """Sent exactly once (never retried); raises UpstreamError, `not_sent` only when
        the request provably never left."""
        response = await self.channel.send(
            "POST",
            self.url(TOPUP_PATH),
            headers={**self.headers(), "Content-Type": "application/json"},
            content=topup_body(amount, payment_method, payment_id, self.account.topup_status),
            idempotent=False,
        )
        self.channel.raise_for_status(response)
        return parse_topup(response.body, self.account, self.context)

    async def fetch_balances(self) -> tuple[Balance, ...]:
        url = self.url(BALANCE_PATH)
        body = await get_ok(self.channel, url, self.headers())
        return (parse_balance(body, self.account, self.context),)


SPEC = ProviderSpec(
    kind=ProviderKind("ourvoice"),
    factory=OurVoice,
    required_credentials=frozenset({"api_key"}),
    default_currency="XOF",
    capabilities=(Capability.BALANCE, Capability.TRANSACTIONS, Capability.TOP_UP),
    transactions_from_journal=True,  # no transaction list of its own: the journal of top-ups
)
