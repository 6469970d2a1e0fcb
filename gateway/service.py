"""Use cases: list accounts and fetch their balances concurrently, with partial results.

No HTTP and no GraphQL here. Each account is fetched in its own task under the overall
request deadline; a failing, slow or buggy adapter becomes a `ProviderFailure` in its
place and never blanks the others.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime

from gateway.accounts import AccountConfig
from gateway.domain import (
    AccountBalance,
    AccountBalanceResult,
    AccountInfo,
    ProviderFailure,
    ProviderKind,
)
from gateway.errors import ErrorCode, UpstreamError
from gateway.providers import BalanceProvider
from gateway.upstream import Clock

log = logging.getLogger("gateway.service")


class BalanceService:
    def __init__(
        self,
        accounts: Mapping[str, AccountConfig],
        adapters: Mapping[str, BalanceProvider],
        clock: Clock,
        deadline_seconds: float,
    ) -> None:
        self._accounts = dict(accounts)
        self._adapters = dict(adapters)
        self._clock = clock
        self.deadline_seconds = deadline_seconds

    def accounts(self, provider: ProviderKind | None = None) -> list[AccountInfo]:
        return [
            account.info
            for account in self._accounts.values()
            if provider is None or account.provider is provider
        ]

    def account(self, account_id: str) -> AccountInfo | None:
        account = self._accounts.get(account_id)
        return account.info if account else None

    async def balances(self, account_ids: Iterable[str]) -> list[AccountBalanceResult]:
        """One result per id (ids must exist), in order, all fetched concurrently."""
        ids = list(account_ids)
        return list(await asyncio.gather(*(self._balance(i) for i in ids)))

    async def _balance(self, account_id: str) -> AccountBalanceResult:
        account = self._accounts[account_id]
        try:
            async with asyncio.timeout(self.deadline_seconds):
                balances = await self._adapters[account_id].fetch_balances()
        except UpstreamError as exc:
            log.warning(
                "account %s failed: %s (%s)", account_id, exc.code.value, exc.detail or exc.message
            )
            return ProviderFailure(
                account.info, exc.code.value, exc.message, exc.retryable, exc.retry_after_seconds
            )
        except TimeoutError:
            log.warning("account %s: request deadline exceeded", account_id)
            return ProviderFailure(
                account.info,
                ErrorCode.UPSTREAM_TIMEOUT.value,
                "The provider did not answer within the request deadline.",
                retryable=True,
            )
        except Exception:
            log.exception("account %s: unexpected error in its adapter", account_id)
            return ProviderFailure(
                account.info, ErrorCode.INTERNAL.value, "Internal error.", retryable=False
            )
        fetched_at = datetime.fromtimestamp(self._clock(), UTC)
        return AccountBalance(account.info, balances, fetched_at)
