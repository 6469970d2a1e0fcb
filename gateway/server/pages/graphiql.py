"""The GraphiQL page (development profile only), served entirely by the gateway.

`GET /graphql` from a browser (it accepts `text/html`) gets the page; its scripts and styles
come from `/graphiql/…` on the same origin, under a Content-Security-Policy that allows
nothing else: no CDN, no inline script or style, no eval, requests only to this origin.
The third-party files are the pinned, verified packages of `graphiql_assets`; when they are
not installed the page says how to install them instead of showing "Loading...".
"""

from __future__ import annotations

import functools
import html
import json
import logging
from importlib import resources
from pathlib import Path

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from gateway.server.pages.graphiql_assets import PACKAGES, Asset, AssetError, assets_dir, load

log = logging.getLogger("gateway.server.pages")

CSP = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "font-src 'self' data:",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    )
)
PAGE_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
IMMUTABLE = "public, max-age=31536000, immutable"
# An inline icon, so the browser does not ask for /favicon.ico (a 404 in its console).
ICON = (
    "data:image/svg+xml,%3Csvg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 16 16'%3E"
    "%3Crect width='16' height='16' rx='3' fill='%23e10098'/%3E%3C/svg%3E"
)
OWN_FILES = {
    "/graphiql/app.js": "text/javascript; charset=utf-8",
    "/graphiql/app.css": "text/css; charset=utf-8",
}

# GraphiQL's first tab: the README's demo query, word for word (a test holds them equal).
# The headers editor's first content: every answer with its trace (`extensions.trace`).
TRACE_HEADERS = json.dumps({"X-Gateway-Trace": "1"})
DEMO_QUERY = (
    resources.files("gateway.server.pages")
    .joinpath("static", "demo-query.graphql")
    .read_text("utf-8")
)


@functools.cache
def _verified_once(source: Path) -> dict[str, Asset]:
    """The files, verified and read once per process (every app built by it shares them)."""
    return load(source)


def wants_html(request: Request) -> bool:
    return request.method == "GET" and "text/html" in request.headers.get("accept", "")


class GraphiQLPage:
    """The page and its files, read once at start-up."""

    def __init__(self, source: Path | None = None) -> None:
        source = source or assets_dir()
        self.files: dict[str, Asset] = {}
        self.problem: str | None = None
        try:
            self.files = dict(_verified_once(source))
        except AssetError as exc:
            self.problem = str(exc)
            log.warning(
                "GraphiQL is unavailable: %s; install its pinned files with "
                "`balance-gateway graphiql fetch` (make does this)",
                exc,
            )
        static = resources.files("gateway.server.pages") / "static"
        for path, content_type in OWN_FILES.items():
            name = path.rsplit("/", 1)[1]
            self.files[path] = Asset(static.joinpath(name).read_bytes(), content_type)

    def page(self) -> Response:
        if self.problem is not None:
            body = (
                "<!doctype html><html lang=en><meta charset=utf-8><title>GraphiQL</title>"
                "<h1>GraphiQL's files are not installed</h1>"
                f"<p>{html.escape(self.problem)}.</p><p>Run <code>.venv/bin/balance-gateway "
                "graphiql fetch</code> (or <code>make run</code>, which does it) and reload."
                " The <code>POST /graphql</code> endpoint works without them.</p>"
            )
            return HTMLResponse(body, 503, headers=PAGE_HEADERS)
        scripts, styles = [], []
        for package in PACKAGES:
            for file in package.files:
                url = html.escape(package.url_path(file))
                if file.endswith(".css"):
                    styles.append(f'<link rel="stylesheet" href="{url}">')
                else:
                    scripts.append(f'<script src="{url}"></script>')
        body = (
            "<!doctype html>\n<html lang=en>\n<head>\n<meta charset=utf-8>\n"
            "<title>Balance Gateway · GraphiQL</title>\n"
            f'<link rel="icon" href="{ICON}">\n'
            + "\n".join(styles)
            + '\n<link rel="stylesheet" href="/graphiql/app.css">\n</head>\n<body>\n'
            f'<div id="graphiql" data-default-query="{html.escape(DEMO_QUERY)}" '
            f'data-default-headers="{html.escape(TRACE_HEADERS)}">'
            "Loading GraphiQL…</div>\n"
            + "\n".join(scripts)
            + '\n<script src="/graphiql/app.js"></script>\n</body>\n</html>\n'
        )
        return HTMLResponse(body, headers=PAGE_HEADERS)

    async def asset(self, request: Request) -> Response:
        path = request.url.path
        asset = self.files.get(path)
        if asset is None:
            return Response("Not found.", 404, media_type="text/plain")
        cache = "no-cache" if path in OWN_FILES else IMMUTABLE
        headers = {"Cache-Control": cache, "X-Content-Type-Options": "nosniff"}
        return Response(asset.body, media_type=asset.content_type, headers=headers)

    def routes(self) -> list[Route]:
        return [Route("/graphiql/{path:path}", self.asset, methods=["GET"])]
