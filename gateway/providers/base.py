"""What every provider adapter offers, and the plain-data spec the registry lists.

An adapter is built per account with that account's `Channel` (the shared HTTP client
behind its own bulkhead, breaker, budget and retries) and the gateway's clock.
It keeps pure parse functions (body → domain values) apart from its one I/O step, and
raises only `UpstreamError`s.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from gateway.accounts import AccountConfig
from gateway.channel import Channel, Headers
from gateway.clock import Clock
from gateway.domain import Balance, Capability, ProviderKind, TransactionFilter, TransactionPage
from gateway.errors import UpstreamContext


class BalanceProvider(Protocol):
    async def fetch_balances(self) -> tuple[Balance, ...]:
        """Every balance line of the account, normalised; raises UpstreamError."""
        ...


AdapterFactory = Callable[[AccountConfig, Channel, Clock], BalanceProvider]


@dataclass(frozen=True)
class ProviderSpec:
    """How to build and configure one provider kind (one registry line each)."""

    kind: ProviderKind
    factory: AdapterFactory
    required_credentials: frozenset[str]
    optional_credentials: frozenset[str] = frozenset()
    default_currency: str | None = None  # None: the provider states currencies itself
    capabilities: tuple[Capability, ...] = (Capability.BALANCE,)
    calls_per_minute: int | None = None  # the provider's documented quota, if any
    calls_per_day: int | None = None


def upstream_context(account: AccountConfig) -> UpstreamContext:
    return UpstreamContext(provider=account.provider.value, account=account.id)


async def get_ok(channel: Channel, url: str, headers: Headers) -> bytes:
    """One GET (retried as reads are); the body of a 2xx, a typed error otherwise."""
    response = await channel.send("GET", url, headers=headers)
    channel.raise_for_status(response)
    return response.body


def join_url(base_url: str, path: str) -> str:
    """Base URL + absolute path, without doubling a version segment both carry (`/v1`)."""
    base = base_url.rstrip("/")
    first = "/" + path.lstrip("/").split("/", 1)[0]
    if first != "/" and base.endswith(first):
        base = base[: -len(first)]
    return base + path


@runtime_checkable
class TransactionSource(Protocol):
    async def transaction_page(self, flt: TransactionFilter, page: int) -> TransactionPage:
        """Page `page` (from 1) of the account's history, newest first, pre-filtered
        upstream as far as the provider allows (the gateway filters exactly)."""
        ...
