"""What the configuration reads of a provider kind, declared here rather than imported.

The configuration is the lowest layer: it may not import the providers. It states what it
needs to check an `[accounts.ID]` table — `ProviderRules` — and whoever parses settings
passes a `ProviderLookup` (the composition root passes `gateway.providers.loading.spec`,
whose `ProviderSpec` satisfies `ProviderRules` structurally).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from gateway.domain import Capability, ProviderKind


class ProviderRules(Protocol):
    """One provider kind, as far as its accounts' configuration is concerned."""

    @property
    def kind(self) -> ProviderKind: ...

    @property
    def required_credentials(self) -> frozenset[str]: ...

    @property
    def optional_credentials(self) -> frozenset[str]: ...

    @property
    def default_currency(self) -> str | None:
        """None: the provider states the currency of every balance itself."""

    @property
    def capabilities(self) -> tuple[Capability, ...]: ...

    @property
    def calls_per_minute(self) -> int | None:
        """The provider's documented quotas (None: none), the accounts' defaults."""

    @property
    def calls_per_day(self) -> int | None: ...

    @property
    def reporting_timezone(self) -> str:
        """The zone whose days the provider's documents use (an account's default)."""

    @property
    def asset_currency(self) -> Callable[[str], str | None] | None:
        """The currency the provider documents for balances of an asset code (None: the
        provider says only when it answers); thresholds' currencies are checked with it."""

    @property
    def balance_currency(self) -> Callable[[str], str | None] | None:
        """The same for the balance whose id is `<account>:<key>`, given the key."""


# The rules of a kind by its name (`ProviderKind` value); `KeyError` for an unknown one.
ProviderLookup = Callable[[str], ProviderRules]
