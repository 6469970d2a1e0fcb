"""What the services ask of an adapter: plain protocols, no HTTP.

The services depend on these alone; the composition root hands them the adapters (which
do HTTP through their channel), so importing a service loads no HTTP library.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from gateway.domain import Balance, TransactionFilter, TransactionPage


class BalanceProvider(Protocol):
    async def fetch_balances(self) -> tuple[Balance, ...]:
        """Every balance line of the account, normalised; raises UpstreamError."""
        ...


@runtime_checkable
class TransactionSource(Protocol):
    async def transaction_page(self, flt: TransactionFilter, page: int) -> TransactionPage:
        """Page `page` (from 1) of the account's history, newest first, pre-filtered
        upstream as far as the provider allows (the gateway filters exactly)."""
        ...
