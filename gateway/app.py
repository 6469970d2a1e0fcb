"""`create_app(settings, …)` → Starlette: the only place that wires things together.

Process-wide resources (the upstream HTTP client, one adapter per account, the service)
live in the lifespan; per-request state lives in the GraphQL context.
"""

from __future__ import annotations

import asyncio
import gc
import logging
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

from gateway import __version__, log_context
from gateway.admission import Admission, AdmissionMiddleware
from gateway.auth import Authenticator, JwtVerifier
from gateway.channel import Sleep
from gateway.clock import Clock
from gateway.endpoint import GatewayGraphQL, GraphQLEndpoint, refusal
from gateway.errors import GatewayError
from gateway.metrics import Metrics
from gateway.pages.graphiql import GraphiQLPage, wants_html
from gateway.pages.home import home
from gateway.schema import build_schema
from gateway.settings import Settings
from gateway.wiring import wired

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
        async with wired(settings, transport, clock, sleep, metrics) as parts:
            app.state.service = parts.service
            app.state.graphql = GraphQLEndpoint(
                graphql,
                parts.service,
                parts.transactions,
                parts.topups,
                authenticator,
                parts.rate_limiter,
                parts.response_cache,
                metrics,
                clock,
                settings.security.limits,
                settings.cache.fresh_seconds,
                settings.server.body_timeout_seconds,
                deadline,
            )
            # Everything built so far lives as long as the process: keep it out of the
            # collector's way, so a full collection does not stall requests for tens of ms.
            gc.collect()
            gc.freeze()
            yield

    async def healthz(request: Request) -> Response:
        ready = getattr(request.app.state, "service", None) is not None
        return JSONResponse({"status": "ok" if ready else "starting"}, 200 if ready else 503)

    async def graphql_endpoint(request: Request) -> Response:
        if graphiql is not None and wants_html(request):
            return graphiql.page()
        endpoint: GraphQLEndpoint = request.app.state.graphql
        return await endpoint(request)

    async def home_endpoint(request: Request) -> Response:
        return home(development, __version__)

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
        graphql_ide=None,  # our own page (gateway.pages.graphiql): no CDN
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
    # the accounts' own deadline, plus a second to assemble and send the answer
    deadline = settings.server.request_deadline_seconds + 1.0
    admission = Admission(
        settings.server.max_concurrent_requests,
        settings.server.max_queued_requests,
        settings.server.queue_timeout_seconds,
        metrics,
    )
    middleware = [
        Middleware(log_context.RequestContext),  # outermost: every request has an id
        Middleware(AdmissionMiddleware, admission=admission, deadline_seconds=deadline),
    ]
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
    graphiql = GraphiQLPage() if development else None
    routes: list[Any] = [
        Route("/", home_endpoint, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/metrics", metrics_endpoint, methods=["GET"]),
        Route("/graphql", graphql_endpoint, methods=["GET", "POST"]),
    ]
    if graphiql is not None:
        routes.extend(graphiql.routes())
    return Starlette(routes=routes, middleware=middleware, lifespan=lifespan)


def secrets_of(settings: Settings) -> list[str]:
    """Every secret the configuration holds, for log redaction."""
    values = [s.reveal() for a in settings.accounts.values() for s in a.credentials.values()]
    if settings.server.cursor_secret is not None:
        values.append(settings.server.cursor_secret.reveal())
    jwt = settings.security.jwt
    if jwt is not None and jwt.secret is not None:
        values.append(jwt.secret.reveal())
    return values
