"""The ASGI edge's routes and middleware, as the composition root assembles them.

Routes: `GET /` (where things are), `GET /healthz` (200 once the lifespan has built the
endpoint), `GET /metrics` (the `metrics:read` scope), `/graphql` (GraphiQL for a browser
in development, else the endpoint) and GraphiQL's own files. Middleware, outermost first:
a request id for every request, admission control, then CORS for the configured origins.
The endpoint lives in `app.state.graphql` once the lifespan has built it.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from gateway import __version__, log_context
from gateway.errors import GatewayError
from gateway.metrics import Metrics
from gateway.server.admission import Admission, AdmissionMiddleware
from gateway.server.endpoint import GraphQLEndpoint, refusal
from gateway.server.pages.graphiql import GraphiQLPage, wants_html
from gateway.server.pages.home import home


def routes(metrics: Metrics, development: bool) -> list[BaseRoute]:
    graphiql = GraphiQLPage() if development else None

    async def healthz(request: Request) -> Response:
        ready = getattr(request.app.state, "graphql", None) is not None
        return JSONResponse({"status": "ok" if ready else "starting"}, 200 if ready else 503)

    async def graphql(request: Request) -> Response:
        if graphiql is not None and wants_html(request):
            return graphiql.page()
        endpoint: GraphQLEndpoint = request.app.state.graphql
        return await endpoint(request)

    async def root(request: Request) -> Response:
        return home(development, __version__)

    async def metrics_page(request: Request) -> Response:
        endpoint: GraphQLEndpoint = request.app.state.graphql
        try:
            principal = await endpoint.principal(request)
            principal.require("metrics:read")
        except GatewayError as exc:
            return refusal(exc)
        return Response(
            metrics.render(), media_type=CONTENT_TYPE_LATEST, headers={"Cache-Control": "no-store"}
        )

    found: list[BaseRoute] = [
        Route("/", root, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/metrics", metrics_page, methods=["GET"]),
        Route("/graphql", graphql, methods=["GET", "POST"]),
    ]
    if graphiql is not None:
        found.extend(graphiql.routes())
    return found


def middleware(
    admission: Admission, deadline_seconds: float, cors_origins: tuple[str, ...]
) -> list[Middleware]:
    stack = [
        Middleware(log_context.RequestContext),  # outermost: every request has an id
        Middleware(AdmissionMiddleware, admission=admission, deadline_seconds=deadline_seconds),
    ]
    if cors_origins:
        cors: dict[str, Any] = {
            "allow_origins": list(cors_origins),
            "allow_methods": ["GET", "POST"],
            "allow_headers": ["Authorization", "Content-Type", "X-API-Key"],
            "allow_credentials": False,
            "max_age": 600,
        }
        stack.append(Middleware(CORSMiddleware, **cors))
    return stack
