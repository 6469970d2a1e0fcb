"""`create_app(settings, …)` → Starlette: the only place that wires things together.

Process-wide resources (the upstream HTTP client, one adapter per account, the service)
live in the lifespan; per-request state lives in the GraphQL context.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.http import GraphQLHTTPResponse
from strawberry.types import ExecutionResult

from gateway.providers import PROVIDERS
from gateway.schema import build_schema
from gateway.schema.context import Context
from gateway.schema.errors import coded
from gateway.service import BalanceService
from gateway.settings import Settings
from gateway.upstream import Clock, UpstreamClient


class GatewayGraphQL(GraphQL[Context, None]):
    async def get_context(
        self, request: Request | WebSocket, response: Response | WebSocket
    ) -> Context:
        assert isinstance(request, Request)
        return Context(request=request, service=request.app.state.service)

    async def process_result(
        self, request: Request, result: ExecutionResult
    ) -> GraphQLHTTPResponse:
        if result.errors:
            result.errors = [coded(error) for error in result.errors]
        return await super().process_result(request, result)


def create_app(
    settings: Settings,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    clock: Clock = time.time,
) -> Starlette:
    """Build the gateway. `transport` reaches the providers (default: aiohttp);
    `clock` (seconds since the epoch) drives token expiry and `fetchedAt`."""

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        http = UpstreamClient(
            transport, max_body_bytes=settings.server.max_upstream_body_bytes, wall_clock=clock
        )
        adapters = {
            account.id: PROVIDERS[account.provider].factory(account, http, clock)
            for account in settings.accounts.values()
        }
        app.state.service = BalanceService(
            settings.accounts, adapters, clock, settings.server.request_deadline_seconds
        )
        try:
            yield
        finally:
            await http.aclose()

    async def healthz(request: Request) -> Response:
        ready = getattr(request.app.state, "service", None) is not None
        return JSONResponse({"status": "ok" if ready else "starting"}, 200 if ready else 503)

    development = settings.server.development
    graphql = GatewayGraphQL(
        build_schema(development=development),
        graphql_ide="graphiql" if development else None,
        allow_queries_via_get=False,
        subscription_protocols=(),
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
        Route("/graphql", graphql, methods=["GET", "POST"]),
    ]
    return Starlette(routes=routes, middleware=middleware, lifespan=lifespan)
