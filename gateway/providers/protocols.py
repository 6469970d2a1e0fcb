"""What the services ask of an adapter: plain protocols, no HTTP.

The services depend on these alone; the composition root hands them the adapters (which
do HTTP through their channel), so importing a service loads no HTTP library.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Protocol, runtime_checkable

from gateway.domain import Balance, Transaction, TransactionFilter, TransactionPage


@runtime_checkable
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


@runtime_checkable
class TopUpProvider(Protocol):
    async def top_up(self, amount: Decimal, payment_method: str, payment_id: str) -> Transaction:
        """Send one top-up (never retried); the provider's transaction, or an UpstreamError
        (`not_sent` only when it provably was not sent)."""
        ...
