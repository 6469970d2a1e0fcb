"""A provider kind as the configuration and the composition root see it: plain data.

Each adapter module defines its `SPEC`; the registry finds it by name. Nothing here does
HTTP, so the configuration can read specs without loading an HTTP library.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from gateway.domain import AssetKind, Capability, ProviderKind, StatementCoverage

if TYPE_CHECKING:
    from gateway.clock import Clock
    from gateway.config.accounts import AccountConfig
    from gateway.providers.protocols import BalanceProvider
    from gateway.upstream.channel import Channel

AdapterFactory = Callable[["AccountConfig", "Channel", "Clock"], "BalanceProvider"]


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
    # TRANSACTIONS answered from the gateway's own journal of top-ups, for a provider that
    # takes top-ups but offers no transaction list (Our Voice).
    transactions_from_journal: bool = False
    # Where the provider's documentation fixes a balance's currency up front, the
    # configuration checks a threshold's `currency` against it (None: known only once the
    # provider answers). `asset_currency(code)`: the currency a balance of this asset code
    # is in, as the provider documents it; `balance_currency(key)`: that of the balance
    # whose id is `<account>:<key>`. Pure; an answer that is None or no known currency
    # (a code or key this provider never answers) says nothing.
    asset_currency: Callable[[str], str | None] | None = None
    balance_currency: Callable[[str], str | None] | None = None
    # The daily close (`services/daily_close.py`): the zone of the provider's documented
    # days (an account's default `reporting_timezone`); which directions its statement
    # lists for a balance of each asset kind (None: it publishes no statement); and the
    # types of its rows that fund the account (a top-up made outside the gateway).
    reporting_timezone: str = "UTC"
    coverage: Callable[[AssetKind], StatementCoverage] | None = None
    funding_types: frozenset[str] = frozenset()
