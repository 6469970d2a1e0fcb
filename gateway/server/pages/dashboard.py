"""`/dashboard`: the balances page — plain HTML, CSS and JavaScript modules written in this
repository (`pages/dashboard/`), served by the gateway in every profile under a strict
Content-Security-Policy: scripts, styles and requests to this origin only, no inline script
or style, no framing. The page holds no data and no secret: it asks `/graphql` with the key
the viewer enters (kept in the tab's sessionStorage, sent as a header, never in a URL)."""

from __future__ import annotations

from importlib import resources

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from gateway.server.pages.graphiql import PAGE_HEADERS

FILES = {
    "index.html": "text/html; charset=utf-8",
    "dashboard.js": "text/javascript; charset=utf-8",
    "money.js": "text/javascript; charset=utf-8",
    "dashboard.css": "text/css; charset=utf-8",
}
HEADERS = {**PAGE_HEADERS, "Cache-Control": "no-cache"}  # GraphiQL's policy; revalidated


class DashboardPage:
    """The page's files, read once at start-up."""

    def __init__(self) -> None:
        folder = resources.files("gateway.server.pages") / "dashboard"
        self.files = {name: folder.joinpath(name).read_bytes() for name in FILES}

    def _file(self, name: str) -> Response:
        return Response(self.files[name], media_type=FILES[name], headers=HEADERS)

    async def page(self, request: Request) -> Response:
        return self._file("index.html")

    async def asset(self, request: Request) -> Response:
        name = request.path_params["name"]
        if name not in FILES or name == "index.html":
            return Response("Not Found", 404, media_type="text/plain", headers=HEADERS)
        return self._file(name)

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/dashboard", self.page, methods=["GET"]),
            Route("/dashboard/", self.page, methods=["GET"]),
            Route("/dashboard/{name}", self.asset, methods=["GET"]),
        ]
