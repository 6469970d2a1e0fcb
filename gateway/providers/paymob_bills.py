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
from urllib.parse import urlsplit

from gateway.accounts import AccountConfig
from gateway.channel import Channel
from gateway.clock import Clock
from gateway.domain import COUNTRIES, Asset, AssetKind, Balance, Money, ProviderKind
from gateway.errors import UpstreamContext
from gateway.providers.base import ProviderSpec, get_ok, join_url, upstream_context
from gateway.wire import WireReader

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


def parse_balances(
    raw: bytes, account: AccountConfig, context: UpstreamContext
) -> tuple[Balance, ...]:
    reader = WireReader(context)
    body = reader.object(reader.loads(raw), "body")
    currency = account.currency or "EGP"
    country = COUNTRIES.get(account.country or "EG")
    lines = (
        ("available", "amount_available", AssetKind.CASH),
        ("commission", "available_commission", AssetKind.COMMISSION),
    )
    balances = []
    for name, field, kind in lines:
        money = Money(reader.number(body, field, "body"), currency)
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


class PaymobBills:
    def __init__(
        self,
        account: AccountConfig,
        channel: Channel,
        clock: Clock,
        nonce: Callable[[], str] = lambda: str(uuid.uuid4()),
    ) -> None:
        self.account = account
        self.channel = channel
        self.clock = clock
        self.nonce = nonce
        self.context = upstream_context(account)

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
        url = join_url(self.account.base_url, BALANCE_PATH)
        body = await get_ok(self.channel, url, lambda: self.headers("GET", url))
        return parse_balances(body, self.account, self.context)


SPEC = ProviderSpec(
    kind=ProviderKind.PAYMOB_BILLS,
    factory=PaymobBills,
    required_credentials=frozenset({"public_key", "secret_key"}),
    default_currency="EGP",
)
