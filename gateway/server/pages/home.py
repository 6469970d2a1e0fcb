"""`GET /`: where things are. In development, links for a person with a browser; in
production, the endpoint's paths only (nothing about the deployment)."""

from __future__ import annotations

from starlette.responses import HTMLResponse, JSONResponse, Response

from gateway.server.pages.graphiql import PAGE_HEADERS

LINKS = (
    ("/dashboard", "Dashboard", "balances at a glance: levels, history, runway, top-ups"),
    ("/graphql", "GraphiQL", "the GraphQL endpoint: POST queries here, or open it in a browser"),
    ("/healthz", "/healthz", "liveness: 200 while the process runs"),
    ("/readyz", "/readyz", "readiness: 200 while it can serve, 503 once it drains"),
    (
        "/metrics",
        "/metrics",
        "Prometheus metrics (needs the metrics:read scope outside development)",
    ),
)


def home(development: bool, version: str) -> Response:
    if not development:
        return JSONResponse(
            {
                "service": "balance-gateway",
                "graphql": "/graphql",
                "mcp": "/mcp",
                "dashboard": "/dashboard",
                "health": "/healthz",
                "ready": "/readyz",
            },
            headers={"Cache-Control": "no-store"},
        )
    items = "".join(f'<li><a href="{href}">{text}</a> — {what}</li>' for href, text, what in LINKS)
    body = (
        "<!doctype html><html lang=en><meta charset=utf-8><title>Balance Gateway</title>"
        f"<h1>Balance Gateway {version}</h1><p>Development profile.</p><ul>{items}</ul>"
    )
    return HTMLResponse(body, headers=PAGE_HEADERS)
