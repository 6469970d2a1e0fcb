"""Use cases: list accounts and read their balances concurrently, with partial results.

No HTTP and no GraphQL here. One request sets one deadline for every upstream attempt it
causes; each account is read through the cache in its own task, and a failing, slow or
buggy account becomes a `ProviderFailure` in its place, never blanking the others.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from datetime import datetime

from gateway._compat.asyncio import started
from gateway.cache import keys
from gateway.cache.changes import ChangeFeed
from gateway.cache.codec import decode_balances, encode_balances
from gateway.cache.read_through import (
    Cached,
    Codec,
    Freshness,
    Generations,
    ReadThroughCache,
    Refresh,
)
from gateway.clock import request_deadline
from gateway.config.accounts import AccountConfig
from gateway.config.reporting import ReportingSettings
from gateway.domain import (
    AccountBalance,
    AccountBalanceResult,
    AccountInfo,
    Balance,
    FreshnessLimit,
    FreshnessLimitCode,
    ProviderFailure,
    ProviderKind,
    StaleReason,
    with_levels,
)
from gateway.errors import ErrorCode, UpstreamError
from gateway.observability import log_context, request_trace
from gateway.providers.protocols import BalanceProvider
from gateway.services.history import SqlHistory
from gateway.services.rates import RateSource, StaticRates

log = logging.getLogger("gateway.services.balances")
BALANCES = Codec[tuple[Balance, ...]](encode_balances, decode_balances)
# `fetched_at` is a datetime, to the microsecond: a read stamped at the moment it was
# asked for may seem that much older.
DATETIME_RESOLUTION = 1e-6
DEADLINE_GRACE_SECONDS = 0.25  # the per-attempt deadline fires first; this is the backstop


class BalanceService:
    def __init__(
        self,
        accounts: Mapping[str, AccountConfig],
        adapters: Mapping[str, BalanceProvider],
        cache: ReadThroughCache,
        generations: Generations,
        deadline_seconds: float,
        *,
        refresh_join_seconds: int = 5,
    ) -> None:
        self._accounts = dict(accounts)
        self._adapters = dict(adapters)
        self._cache = cache
        self.generations = generations
        self.deadline_seconds = deadline_seconds
        # Told of every invalidation (a top-up changed the balance): live streams re-read.
        self.invalidated: list[Callable[[str], None]] = []
        # Tells every other process of it too (a shared cache: their live streams re-read).
        self.changes: ChangeFeed | None = None
        # Told of every account's answer, as it is read (gauges, history).
        self.answered: list[Callable[[AccountBalanceResult], None]] = []
        self.history: SqlHistory | None = None  # `[history]` on: balances over time
        self.reporting = ReportingSettings()  # `[reporting]`: totals in one currency
        self.rates: RateSource = StaticRates(self.reporting.table)  # and their rates
        # Per account, the last read and its answer, built once: every request that awaits
        # the same upstream read (one `Cached`, shared by the cache's single flight) is
        # given the same answer, and the listeners hear of it once. A cache hit is a copy
        # of its own (`test_a_value_mutated_by_one_reader_is_not_seen_by_the_next`).
        self._built: dict[str, tuple[Cached[tuple[Balance, ...]], AccountBalance]] = {}
        # A refresh takes an answer read at most this long before it was asked; per
        # account, the read a refresh last announced (each new one is announced once).
        self.refresh_join_seconds = refresh_join_seconds
        self._announced: dict[str, datetime] = {}

    def accounts(self, provider: ProviderKind | None = None) -> list[AccountInfo]:
        return [
            account.info
            for account in self._accounts.values()
            if provider is None or account.provider is provider
        ]

    def account(self, account_id: str) -> AccountInfo | None:
        account = self._accounts.get(account_id)
        return account.info if account else None

    def fresh_seconds(self, account_id: str) -> float:
        return self._accounts[account_id].fresh_seconds

    def allowed_max_age(self, account_id: str, max_age: int | None) -> int | None:
        """The freshness a read asking for `max_age` seconds gets: that, but never fresher
        than the account's quota allows (None: the account's own `fresh_seconds`)."""
        if max_age is None:
            return None
        return max(max_age, self._accounts[account_id].quota_interval_seconds)

    async def balances(
        self, account_ids: Iterable[str], max_age: int | None = None, *, refresh: bool = False
    ) -> list[AccountBalanceResult]:
        """One result per id (ids must exist), in order, all read concurrently."""
        reads = self.start(account_ids, max_age, refresh=refresh)
        return list(await asyncio.gather(*reads.values()))

    def start(
        self, account_ids: Iterable[str], max_age: int | None = None, *, refresh: bool = False
    ) -> dict[str, asyncio.Task[AccountBalanceResult]]:
        """Each account's read, started now under one deadline (ids must exist): await
        them together, or each as it finishes. A read never raises: a failure is its
        result. `max_age`: the caller's bound in seconds on the answer's age (0: read it
        now), within the account's quota — an answer older than asked says why.
        `refresh`: a re-read (`refresh_join_seconds` its bound) whose new answer is
        announced at once: cached responses that held the old one stop matching, live
        streams re-read."""
        ids = list(account_ids)
        log_context.stats().accounts += len(ids)
        if refresh:
            max_age = self.refresh_join_seconds
        with request_deadline(self.deadline_seconds):  # each task keeps this context
            return {i: started(self._balance(i, max_age, refresh)) for i in ids}

    async def invalidate(self, account_id: str) -> None:
        """Forget the account's cached balance and every cached response that included it."""
        await self._cache.drop(keys.balance(self._accounts[account_id]))
        await self._changed(account_id)

    async def _changed(self, account_id: str) -> None:
        """Cached responses that included the account stop matching on every replica;
        this process's listeners re-read, and every other process's through `changes`."""
        await self.generations.bump(account_id)
        for listener in self.invalidated:
            listener(account_id)
        if self.changes is not None:
            await self.changes.announce(account_id)

    async def _announce(self, result: AccountBalanceResult) -> None:
        """A refresh's answer, announced once per new read (in this process): not a stale
        one, nor one already announced."""
        if not isinstance(result, AccountBalance) or result.stale:
            return
        account = result.account.id
        if self._announced.get(account) == result.fetched_at:
            return
        self._announced[account] = result.fetched_at
        await self._changed(account)

    async def _balance(
        self, account_id: str, max_age: int | None, refresh: bool
    ) -> AccountBalanceResult:
        asked_at = self._cache.now()
        traced = request_trace.account_read(account_id)
        result, known = await self._read(account_id, max_age, refresh)
        if traced is not None:
            traced.ended = time.monotonic()
        if refresh:
            await self._announce(result)
        if not known:
            if not isinstance(result, AccountBalance):
                # The listeners' last word on the account is this failure: the answer
                # built before it is announced again if it is served again.
                self._built.pop(account_id, None)
            for listener in self.answered:
                listener(result)
        return self._as_asked(result, max_age, asked_at, refresh)

    def _as_asked(
        self, result: AccountBalanceResult, max_age: int | None, asked_at: float, refresh: bool
    ) -> AccountBalanceResult:
        """The answer, saying why when it is older than the caller's `max_age` was when
        asked — or, for a refresh, stale at all: a refresh asked for a new read (a copy:
        the shared answer stays as every other reader sees it)."""
        if max_age is None or not isinstance(result, AccountBalance):
            return result
        age = asked_at - result.fetched_at.timestamp()
        if age <= max_age + DATETIME_RESOLUTION and not (refresh and result.stale):
            return result
        allowed = self.allowed_max_age(result.account.id, max_age) or 0
        if result.stale:
            code, why = FreshnessLimitCode.STALE, "the provider failed; see staleReason"
        elif allowed > max_age:
            code = FreshnessLimitCode.QUOTA
            why = f"its call quota allows one read every {allowed} s"
        else:
            code, why = FreshnessLimitCode.JOINED, "it joined a read already under way"
        bound = "" if result.stale else f", not {max_age} s"
        message = f"Read {age:.0f} s before it was asked for{bound}: {why}."
        limit = FreshnessLimit(code, message, max_age, allowed)
        return replace(result, freshness_limit=limit)

    async def _read(
        self, account_id: str, max_age: int | None, refresh: bool
    ) -> tuple[AccountBalanceResult, bool]:
        """The account's answer, and whether it is one already given (the same read). A
        refresh reads again unless another refresh just did (or the quota forbids)."""
        account = self._accounts[account_id]
        freshness = Freshness(account.fresh_seconds, account.stale_seconds)
        fetch = self._adapters[account_id].fetch_balances
        key = keys.balance(account)
        fresh_for = self.allowed_max_age(account_id, 0 if refresh else max_age)
        again = Refresh(keys.refreshed(key), self.refresh_join_seconds) if refresh else None
        try:
            async with asyncio.timeout(self.deadline_seconds + DEADLINE_GRACE_SECONDS):
                cached = await self._cache.read(
                    key, account_id, freshness, fetch, BALANCES, fresh_for, again
                )
        except UpstreamError as exc:
            log.warning(
                "account %s failed: %s (%s)", account_id, exc.code.value, exc.detail or exc.message
            )
            failure = ProviderFailure(
                account.info, exc.code.value, exc.message, exc.retryable, exc.retry_after_seconds
            )
            return failure, False
        except TimeoutError:
            log.warning("account %s: request deadline exceeded", account_id)
            failure = ProviderFailure(
                account.info,
                ErrorCode.UPSTREAM_TIMEOUT.value,
                "The provider did not answer within the request deadline.",
                retryable=True,
            )
            return failure, False
        except Exception:
            log.exception("account %s: unexpected error in its adapter", account_id)
            failure = ProviderFailure(
                account.info, ErrorCode.INTERNAL.value, "Internal error.", retryable=False
            )
            return failure, False
        built = self._built.get(account_id)
        if built is not None and built[0] is cached:
            return built[1], True
        reason = None
        if cached.stale_because is not None:
            stale_because = cached.stale_because
            reason = StaleReason(
                stale_because.code.value, stale_because.message, stale_because.retry_after_seconds
            )
        balances = with_levels(cached.value, account.thresholds)
        answer = AccountBalance(account.info, balances, cached.fetched_at, cached.stale, reason)
        self._built[account_id] = (cached, answer)
        return answer, False
