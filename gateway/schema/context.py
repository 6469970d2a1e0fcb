"""Per-request GraphQL state: the balance service, one read per account (awaited together, or
each as it arrives for `@stream`), deferred errors, and how long the answer may be cached
(until its first balance stops being fresh)."""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

from graphql import GraphQLError
from starlette.requests import Request

from gateway.access import DEVELOPMENT, Principal
from gateway.domain import AccountBalance, AccountBalanceResult, AccountInfo
from gateway.errors import ClientError
from gateway.observability import log_context
from gateway.observability.request_trace import RequestTrace
from gateway.schema.transactions import (
    TransactionConnection,
    TransactionFilter,
    transactions_of,
)
from gateway.schema.types import ProviderFailure
from gateway.services.balances import BalanceService
from gateway.services.daily_close import DailyCloseService
from gateway.services.live import BalanceWatch
from gateway.services.topups import TopUpService
from gateway.services.transactions import TransactionService


@dataclass
class Context:
    request: Request | None
    balance_service: BalanceService
    transactions: TransactionService
    topups: TopUpService
    daily_close: DailyCloseService | None = None
    principal: Principal = DEVELOPMENT
    max_accounts: int = 100
    cache_until: float = 0.0
    # Until when the answer's balances are as fresh as asked (their reads' fetch times
    # plus the fresh window or `maxAgeSeconds`): an identical request that asked by then
    # may be sent this answer (`server/shared_answers.py`); none read: no bound.
    fresh_until: float = math.inf
    cacheable: bool = True
    operation_name: str | None = None  # as the client sent it (None: it named none)
    live: BalanceWatch | None = None  # set for a Server-Sent Events stream
    stream_end: BaseException | None = None  # why a live stream ended early, if it did
    errors: list[GraphQLError] = field(default_factory=list)
    trace: RequestTrace | None = None  # answered as `extensions.trace` (request_trace.py)
    # One read per account (and `maxAgeSeconds` asked, and whether it is a refresh) per
    # request, however many fields ask for it.
    _reads: dict[tuple[str, int | None, bool], asyncio.Future[AccountBalanceResult]] = field(
        default_factory=dict
    )

    async def balances(
        self, account_ids: list[str], max_age: int | None = None, refresh: bool = False
    ) -> list[AccountBalanceResult]:
        """The accounts' results, in order. Waiting never cancels a read: graphql-core
        cancels the siblings of a failed field, and the reads are shared by every field
        that asked for the same account — one field's cancellation must not fail the
        others."""
        reads = self._read(account_ids, max_age, refresh)
        if reads:
            await asyncio.wait(reads)
        return [read.result() for read in reads]

    async def arriving(
        self, account_ids: list[str], max_age: int | None = None, refresh: bool = False
    ) -> AsyncIterator[AccountBalanceResult]:
        """The accounts' results, each as soon as it is known (cached ones first)."""
        for next_result in asyncio.as_completed(self._read(account_ids, max_age, refresh)):
            yield await next_result

    def _read(
        self, account_ids: list[str], max_age: int | None, refresh: bool
    ) -> list[asyncio.Future[AccountBalanceResult]]:
        new = [i for i in dict.fromkeys(account_ids) if (i, max_age, refresh) not in self._reads]
        if new:
            reads = self.balance_service.start(new, max_age, refresh=refresh)
            for account_id, read in reads.items():
                # runs before any awaiting field resumes
                read.add_done_callback(lambda done: self._note(done, max_age))
                self._reads[account_id, max_age, refresh] = read
        return [self._reads[i, max_age, refresh] for i in account_ids]

    def asked_ids(self, account_ids: Sequence[object] | None) -> list[str]:
        """The ids a field asks for (default: every visible account), once each, at most
        `max_accounts` of them (more is the client's mistake)."""
        if account_ids is None:
            ids = [a.id for a in self.visible_accounts()]
        else:
            ids = list(dict.fromkeys(str(i) for i in account_ids))
        if len(ids) > self.max_accounts:
            raise ClientError(f"At most {self.max_accounts} accounts per field.")
        return ids

    async def account_transactions(
        self, account_id: str, flt: TransactionFilter | None, first: int, after: str | None
    ) -> TransactionConnection | ProviderFailure:
        """One page of an account's transactions (`Account.transactions`): through the
        context, so that the account's type does not import the transactions' module that
        imports it."""
        return await transactions_of(self, account_id, flt, first, after)

    def visible(self, account_id: str) -> AccountInfo | None:
        """The account if this caller may see it; otherwise exactly as if it did not exist."""
        account = self.balance_service.account(account_id)
        return account if account and self.principal.can_see(account.id) else None

    def visible_accounts(self) -> list[AccountInfo]:
        return [a for a in self.balance_service.accounts() if self.principal.can_see(a.id)]

    def _note(self, read: asyncio.Future[AccountBalanceResult], max_age: int | None) -> None:
        """A failure counts in the request's stats. Failures and stale answers are never
        cached; fresh ones until they go stale — or, read for a `maxAgeSeconds`, until
        they are older than that (what a stored answer says of its age stays true)."""
        if read.cancelled():
            return
        result = read.result()
        if not isinstance(result, AccountBalance):
            log_context.stats().failures += 1
            self.cacheable = False
            return
        if result.stale:
            self.cacheable = False
            return
        account = result.account.id
        fresh = self.balance_service.fresh_seconds(account) if max_age is None else max_age
        self.fresh_until = min(self.fresh_until, result.fetched_at.timestamp() + fresh)
        self.cache_until = min(self.cache_until, self.fresh_until)
