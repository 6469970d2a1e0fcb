"""The ASGI edge's routes and middleware, as the composition root assembles them.

Routes: `GET /` (where things are), `GET /healthz` (liveness), `GET /readyz` (readiness,
`readiness.py`), `GET /metrics` (the `metrics:read` scope), `/graphql` (GraphiQL for a browser
in development, else the endpoint), `/mcp` (the trusted documents as MCP tools, `mcp.py`)
and GraphiQL's own files. Middleware, outermost first:
a request id for every request, its span (when tracing is on), slow readers cut off
(`slow_readers.py`), `/graphql/stream` handed straight to its endpoint
(`stream_dispatch.py`; after CORS when origins are configured), a response-cache hit
answered at once (`cached_answers.py`), then CORS for the configured origins. Admission
control is the endpoints' (`admission.py`): it needs to know a query from a mutation. The
endpoint lives in `app.state.graphql` once the lifespan has built it.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from gateway import __version__
from gateway.config.settings import ServerSettings
from gateway.errors import ClientError, GatewayError, NotFound
from gateway.observability import log_context
from gateway.observability.tracing import NO_TRACING, TracedRequests, Tracing
from gateway.server.cached_answers import CachedAnswers
from gateway.server.endpoint import GraphQLEndpoint
from gateway.server.events import EventStreams
from gateway.server.exposition import Exposition, metrics_response
from gateway.server.mcp import PATH as MCP_PATH
from gateway.server.mcp import McpRoute
from gateway.server.outcomes import refusal
from gateway.server.pages.dashboard import DashboardPage
from gateway.server.pages.graphiql import GraphiQLPage, wants_html
from gateway.server.pages.home import home
from gateway.server.readiness import Readiness
from gateway.server.request_metrics import STREAM_PATH, Observer
from gateway.server.slow_readers import SlowReaders
from gateway.server.stream_dispatch import METHODS as STREAM_METHODS
from gateway.server.stream_dispatch import StreamDispatch
from gateway.services.daily_close import csv_text, parse_day

NO_STORE = {"Cache-Control": "no-store"}


def routes(development: bool) -> list[BaseRoute]:
    graphiql = GraphiQLPage() if development else None

    async def healthz(request: Request) -> Response:
        """Liveness: the process is up and its event loop turns (draining included)."""
        return JSONResponse({"status": "ok"}, headers=NO_STORE)

    async def readyz(request: Request) -> Response:
        readiness: Readiness | None = getattr(request.app.state, "readiness", None)
        if readiness is None:
            return JSONResponse({"status": "starting"}, 503, headers=NO_STORE)
        ready, body = await readiness.check()
        return JSONResponse(body, 200 if ready else 503, headers=NO_STORE)

    async def graphql(request: Request) -> Response:
        if graphiql is not None and wants_html(request):
            return graphiql.page()
        endpoint: GraphQLEndpoint = request.app.state.graphql
        return await endpoint(request)

    async def stream(request: Request) -> Response:
        events: EventStreams = request.app.state.events
        return await events(request)

    async def root(request: Request) -> Response:
        return home(development, __version__)

    async def metrics_page(request: Request) -> Response:
        endpoint: GraphQLEndpoint = request.app.state.graphql
        try:
            principal = await endpoint.principal(request)
            principal.require("metrics:read")
        except GatewayError as exc:
            return refusal(exc)
        exposition: Exposition = request.app.state.exposition
        return metrics_response(await exposition())

    async def daily_close_csv(request: Request) -> Response:
        """`GET /reports/daily-close.csv?date=YYYY-MM-DD[&accountIds=a,b]`: the daily
        close, one row per balance (RFC 4180), for the accounts the caller may see."""
        endpoint: GraphQLEndpoint = request.app.state.graphql
        try:
            principal = await endpoint.principal(request)
            principal.require("transactions:read")
            visible = [a.id for a in endpoint.service.accounts() if principal.can_see(a.id)]
            day, ids = report_query(request, visible)
        except GatewayError as exc:
            return refusal(exc)
        closes = await request.app.state.daily_close.close(day, ids)
        return Response(
            csv_text(closes),
            media_type="text/csv; charset=utf-8",
            headers={
                **NO_STORE,
                "Content-Disposition": f'attachment; filename="daily-close-{day}.csv"',
            },
        )

    found: list[BaseRoute] = [
        Route("/", root, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics_page, methods=["GET"]),
        Route("/graphql", graphql, methods=["GET", "POST"]),
        Route(STREAM_PATH, stream, methods=sorted(STREAM_METHODS)),
        Route("/reports/daily-close.csv", daily_close_csv, methods=["GET"]),
        Route(MCP_PATH, McpRoute()),  # every method: a refusal of its own, in JSON-RPC
    ]
    found.extend(DashboardPage().routes())  # every profile: it holds no data, no secret
    if graphiql is not None:
        found.extend(graphiql.routes())
    return found


def report_query(request: Request, known: list[str]) -> tuple[date, list[str]]:
    """The report's `date` (required, YYYY-MM-DD) and `accountIds` (default: every
    account in `known`, those the caller may see); a ClientError or NotFound says what is
    wrong — an account the caller may not see is unknown, as in GraphQL."""
    if "date" not in request.query_params:
        raise ClientError("`date` is required: date=YYYY-MM-DD, e.g. date=2025-04-30.")
    try:
        day = parse_day(request.query_params["date"])
    except ClientError as exc:
        raise ClientError(f"`date`: {exc.message}") from None
    asked = request.query_params.get("accountIds")
    ids = list(dict.fromkeys(i for i in asked.split(",") if i)) if asked else known
    unknown = [i for i in ids if i not in known]
    if unknown:
        raise NotFound(f"No account {unknown[0]!r}.")
    return day, ids


def middleware(
    server: ServerSettings,
    *,
    access_log: bool = True,
    log_health_checks: bool = False,
    observe: Observer | None = None,
    tracing: Tracing = NO_TRACING,
) -> list[Middleware]:
    skip = () if log_health_checks else log_context.HEALTH_PATHS
    stack = [
        # outermost: every request has an id, one access line, its metrics
        Middleware(log_context.RequestContext, access=access_log, skip=skip, observe=observe),
    ]
    if tracing.enabled:  # a span around each request (a layer less for all when off)
        stack.append(Middleware(TracedRequests, tracing=tracing))
    stack.append(
        Middleware(
            SlowReaders,
            write_timeout=server.write_timeout_seconds,
            buffer_bytes=server.stream_buffer_bytes,
        )
    )
    # A stream's request passes no layer it does not need: each stays alive, in memory,
    # as long as the stream is open (`stream_dispatch.py`) — CORS only when configured.
    if not server.cors_origins:
        stack.append(Middleware(StreamDispatch))
    if tracing is NO_TRACING:  # a response-cache hit answered here (a traced one: the whole way)
        stack.append(Middleware(CachedAnswers, cors=bool(server.cors_origins)))
    if server.cors_origins:
        cors: dict[str, Any] = {
            "allow_origins": list(server.cors_origins),
            "allow_methods": ["GET", "POST"],
            "allow_headers": ["Authorization", "Content-Type", "X-API-Key"],
            "allow_credentials": False,
            "max_age": 600,
        }
        stack.append(Middleware(CORSMiddleware, **cors))
        stack.append(Middleware(StreamDispatch))  # its answers with CORS headers
    return stack
