"""Our Voice: prepaid messaging credit (XOF), static Bearer key.

Envelope `{"data": {"success": true, "message": …, "data": <inner>}}` where `<inner>` is a
JSON-encoded string in the docs and an object in the SDKs: both are accepted; a string that
does not decode is a bad response, never repaired. The balance carries no currency: it comes
from the account's configuration.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gateway.accounts import AccountConfig
from gateway.channel import Channel
from gateway.clock import Clock
from gateway.domain import COUNTRIES, Asset, AssetKind, Balance, Capability, Money, ProviderKind
from gateway.errors import UpstreamContext, UpstreamUnavailable
from gateway.providers.base import ProviderSpec, get_ok, join_url, upstream_context
from gateway.wire import WireReader

BALANCE_PATH = "/v1/current/balance"


def unwrap(reader: WireReader, raw: bytes) -> Mapping[str, Any]:
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


def parse_balance(raw: bytes, account: AccountConfig, context: UpstreamContext) -> Balance:
    reader = WireReader(context)
    amount = reader.number(unwrap(reader, raw), "balance", "data.data")
    currency = account.currency or "XOF"
    money = Money(amount, currency)
    return Balance(
        id=f"{account.id}:credit:{currency}",
        asset=Asset(code=currency, currency=currency, kind=AssetKind.PREPAID_CREDIT),
        total=money,
        available=money,
        country=COUNTRIES.get(account.country or ""),
    )


class OurVoice:
    def __init__(self, account: AccountConfig, channel: Channel, clock: Clock) -> None:
        self.account = account
        self.channel = channel
        self.context = upstream_context(account)

    def headers(self) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {self.account.secret('api_key')}",
            "Accept": "application/json",
        }

    async def fetch_balances(self) -> tuple[Balance, ...]:
        url = join_url(self.account.base_url, BALANCE_PATH)
        body = await get_ok(self.channel, url, self.headers())
        return (parse_balance(body, self.account, self.context),)


SPEC = ProviderSpec(
    kind=ProviderKind.OURVOICE,
    factory=OurVoice,
    required_credentials=frozenset({"api_key"}),
    default_currency="XOF",
    capabilities=(Capability.BALANCE,),
)
