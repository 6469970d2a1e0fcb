"""`create_app(settings, …)` → Starlette: the only place that wires things together.

Process-wide resources (the upstream HTTP client, one adapter per account, the service)
live in the lifespan; per-request state lives in the GraphQL context.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gateway import log_context
from gateway.accounts import AccountConfig
from gateway.auth import Authenticator, JwtVerifier
from gateway.breaker import CircuitBreaker
from gateway.budget import Budget, Limits
from gateway.cache import Generations, ReadThroughCache
from gateway.channel import Channel, RetryPolicy, Sleep
from gateway.clock import Clock
from gateway.cursor import Cursors
from gateway.domain import Capability
from gateway.endpoint import GatewayGraphQL, GraphQLEndpoint, refusal
from gateway.errors import GatewayError
from gateway.metrics import Metrics
from gateway.providers import PROVIDERS, TransactionSource
from gateway.providers.base import upstream_context
from gateway.rate_limit import RateLimiter
from gateway.response_cache import ResponseCache
from gateway.schema import build_schema
from gateway.service import BalanceService
from gateway.settings import Settings
from gateway.store import Store, open_store
from gateway.transactions import TransactionService
from gateway.upstream import UpstreamClient

log = logging.getLogger("gateway.app")


def create_app(
    settings: Settings,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    clock: Clock = time.time,
    sleep: Sleep = asyncio.sleep,
) -> Starlette:
    """Build the gateway. `transport` reaches the providers (default: aiohttp); `clock`
    (seconds since the epoch) drives freshness, budgets, breakers and token expiry; `sleep`
    is how retries wait (tests pass one that does not)."""
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        store = open_store(settings.cache.url, f"{settings.cache.namespace}:v1")
        http = UpstreamClient(
            transport, max_body_bytes=settings.upstream.max_body_bytes, wall_clock=clock
        )
        adapters = {
            account.id: PROVIDERS[account.provider].factory(
                account, channel_for(account, settings, http, store, metrics, clock, sleep), clock
            )
            for account in settings.accounts.values()
        }
        cache = ReadThroughCache(
            store, clock, metrics, fill_wait_seconds=settings.cache.fill_wait_seconds
        )
        generations = Generations(store)
        service = BalanceService(
            settings.accounts,
            adapters,
            cache,
            generations,
            settings.server.request_deadline_seconds,
        )
        response_cache = (
            ResponseCache(store, generations, clock) if settings.cache.response_cache else None
        )
        app.state.service = service
        # Everything built so far lives as long as the process: keep it out of the
        # collector's way, so a full collection does not stall requests for tens of ms.
        gc.collect()
        gc.freeze()
        security = settings.security
        transactions = TransactionService(
            settings.accounts,
            {
                k: v
                for k, v in adapters.items()
                if isinstance(v, TransactionSource)
                and Capability.TRANSACTIONS in settings.accounts[k].capabilities
            },
            cache,
            Cursors(cursor_secret(settings)),
            settings.cache.transactions_fresh_seconds,
            settings.server.request_deadline_seconds,
        )
        app.state.graphql = GraphQLEndpoint(
            graphql,
            service,
            transactions,
            authenticator,
            RateLimiter(
                store, security.rate_limit.requests_per_second, security.rate_limit.burst, clock
            ),
            response_cache,
            metrics,
            clock,
            security.limits,
            settings.cache.fresh_seconds,
        )
        try:
            yield
        finally:
            await http.aclose()
            await store.close()

    async def healthz(request: Request) -> Response:
        ready = getattr(request.app.state, "service", None) is not None
        return JSONResponse({"status": "ok" if ready else "starting"}, 200 if ready else 503)

    async def graphql_endpoint(request: Request) -> Response:
        endpoint: GraphQLEndpoint = request.app.state.graphql
        return await endpoint(request)

    async def metrics_endpoint(request: Request) -> Response:
        endpoint: GraphQLEndpoint = request.app.state.graphql
        try:
            principal = await endpoint.principal(request)
            principal.require("metrics:read")
        except GatewayError as exc:
            return refusal(exc)
        return Response(
            metrics.render(), media_type=CONTENT_TYPE_LATEST, headers={"Cache-Control": "no-store"}
        )

    development = settings.server.development
    limits = settings.security.limits
    graphql = GatewayGraphQL(
        build_schema(development=development, limits=limits),
        graphql_ide="graphiql" if development else None,
        allow_queries_via_get=limits.allow_get,
        subscription_protocols=(),
        development=development,
        max_errors=limits.max_errors,
    )
    authenticator = Authenticator(
        settings.security.clients,
        JwtVerifier(settings.security.jwt, clock) if settings.security.jwt else None,
        development=development,
    )
    log_context.install(secrets_of(settings))
    if development:
        log.warning(
            "development profile: requests without a key get every scope on every "
            "account, and GraphiQL and introspection are on; never expose this"
        )
    middleware: list[Middleware] = []
    if settings.server.cors_origins:
        middleware.append(
            Middleware(
                CORSMiddleware,
                allow_origins=list(settings.server.cors_origins),
                allow_methods=["GET", "POST"],
                allow_headers=["Authorization", "Content-Type", "X-API-Key"],
                allow_credentials=False,
                max_age=600,
            )
        )
    routes: list[Any] = [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/metrics", metrics_endpoint, methods=["GET"]),
        Route("/graphql", graphql_endpoint, methods=["GET", "POST"]),
    ]
    return Starlette(routes=routes, middleware=middleware, lifespan=lifespan)


def cursor_secret(settings: Settings) -> bytes:
    """The configured secret; in development, a random one (cursors then last one process)."""
    if settings.server.cursor_secret is not None:
        return settings.server.cursor_secret.reveal().encode()
    log.warning("no [server] cursor_secret: pagination cursors are valid in this process only")
    return secrets.token_bytes(32)


def secrets_of(settings: Settings) -> list[str]:
    """Every secret the configuration holds, for log redaction."""
    values = [s.reveal() for a in settings.accounts.values() for s in a.credentials.values()]
    if settings.server.cursor_secret is not None:
        values.append(settings.server.cursor_secret.reveal())
    jwt = settings.security.jwt
    if jwt is not None and jwt.secret is not None:
        values.append(jwt.secret.reveal())
    return values


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
