"""The gateway's process-wide parts, built from settings and closed together: the shared
stores, the upstream client, one adapter and channel per account, and the services."""

from __future__ import annotations

import logging
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import cast

import httpx

from gateway.accounts import AccountConfig
from gateway.breaker import CircuitBreaker
from gateway.budget import Budget, Limits
from gateway.cache import Generations, ReadThroughCache
from gateway.channel import Channel, RetryPolicy, Sleep
from gateway.clock import Clock
from gateway.cursor import Cursors
from gateway.domain import Capability
from gateway.idempotency import open_idempotency
from gateway.metrics import Metrics
from gateway.providers import PROVIDERS, TransactionSource
from gateway.providers.base import upstream_context
from gateway.rate_limit import RateLimiter
from gateway.response_cache import ResponseCache
from gateway.service import BalanceService
from gateway.settings import Settings
from gateway.store import Store, open_store
from gateway.topup import Journal, TopUpProvider, TopUpService
from gateway.transactions import TransactionService
from gateway.upstream import UpstreamClient

log = logging.getLogger("gateway.app")


@dataclass(frozen=True)
class Parts:
    service: BalanceService
    transactions: TransactionService
    topups: TopUpService
    rate_limiter: RateLimiter
    response_cache: ResponseCache | None


@asynccontextmanager
async def wired(
    settings: Settings,
    transport: httpx.AsyncBaseTransport | None,
    clock: Clock,
    sleep: Sleep,
    metrics: Metrics,
) -> AsyncIterator[Parts]:
    accounts = settings.accounts

    def can(account_id: str, capability: Capability) -> bool:
        return capability in accounts[account_id].capabilities

    store = open_store(settings.cache.url, f"{settings.cache.namespace}:v1")
    http = UpstreamClient(
        transport, max_body_bytes=settings.upstream.max_body_bytes, wall_clock=clock
    )
    journal = open_idempotency(settings.idempotency.url)
    try:
        adapters = {
            account.id: PROVIDERS[account.provider].factory(
                account, channel_for(account, settings, http, store, metrics, clock, sleep), clock
            )
            for account in accounts.values()
        }
        cache = ReadThroughCache(
            store, clock, metrics, fill_wait_seconds=settings.cache.fill_wait_seconds
        )
        generations = Generations(store)
        service = BalanceService(
            accounts, adapters, cache, generations, settings.server.request_deadline_seconds
        )
        topups = TopUpService(
            accounts,
            {k: cast(TopUpProvider, v) for k, v in adapters.items() if can(k, Capability.TOP_UP)},
            journal,
            service.invalidate,
            clock,
            settings.idempotency.wait_seconds,
            settings.idempotency.lease_seconds,
        )
        sources: dict[str, TransactionSource] = {}
        for account_id, adapter in adapters.items():
            if can(account_id, Capability.TOP_UP):  # its history is our journal
                sources[account_id] = Journal(journal, account_id)
            elif can(account_id, Capability.TRANSACTIONS):
                sources[account_id] = cast(TransactionSource, adapter)
        transactions = TransactionService(
            accounts,
            sources,
            cache,
            Cursors(cursor_secret(settings)),
            settings.cache.transactions_fresh_seconds,
            settings.server.request_deadline_seconds,
        )
        yield Parts(
            service=service,
            transactions=transactions,
            topups=topups,
            rate_limiter=RateLimiter(store, settings.security.rate_limit, clock),
            response_cache=(
                ResponseCache(store, generations, clock) if settings.cache.response_cache else None
            ),
        )
    finally:
        await http.aclose()
        await store.close()
        await journal.close()


def cursor_secret(settings: Settings) -> bytes:
    """The configured secret; in development, a random one (cursors then last one process)."""
    if settings.server.cursor_secret is not None:
        return settings.server.cursor_secret.reveal().encode()
    log.warning("no [server] cursor_secret: pagination cursors are valid in this process only")
    return secrets.token_bytes(32)


def channel_for(
    account: AccountConfig,
    settings: Settings,
    http: UpstreamClient,
    store: Store,
    metrics: Metrics,
    clock: Clock,
    sleep: Sleep,
) -> Channel:
    upstream = settings.upstream
    return Channel(
        http,
        upstream_context(account),
        timeout_seconds=account.timeout_seconds,
        retry=RetryPolicy(
            upstream.max_attempts, upstream.backoff_base_seconds, upstream.backoff_max_seconds
        ),
        breaker=CircuitBreaker(upstream.breaker_failures, upstream.breaker_cooldown_seconds, clock),
        budget=Budget(
            account.id, Limits(account.calls_per_minute, account.calls_per_day), store, clock
        ),
        max_concurrency=upstream.max_concurrency,
        metrics=metrics,
        clock=clock,
        sleep=sleep,
    )
