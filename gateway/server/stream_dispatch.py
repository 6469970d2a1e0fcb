"""`/graphql/stream` handed straight to its endpoint (`events.py`), past Starlette's
exception middleware, router, route and request wrapper.

A stream's request stays inside every layer it went through for as long as the stream is
open: each layer's frame and the closures it made live that long. Four layers of routing
for a path known here cost ≈ 6 KB an open stream (of ≈ 45 KB): memory that a wave of
streams raises the process's high-water mark by, which CPython keeps after they end (an
arena is given back only once nothing in it lives). A method the path does not answer
goes on to the router (405, as before); nothing here refuses anything by itself — the
endpoint answers its own refusals (`outcomes.refusal`), and an unexpected error reaches
Starlette's server-error middleware as from any route.
"""

from __future__ import annotations

from starlette.requests import Request

from gateway.observability.log_context import ASGIApp, Receive, Scope, Send
from gateway.server.request_metrics import STREAM_PATH

METHODS = frozenset(("GET", "POST", "PUT", "DELETE"))  # what the path answers (`edge.routes`)


class StreamDispatch:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        events = None
        if scope["type"] == "http" and scope["path"] == STREAM_PATH and scope["method"] in METHODS:
            events = getattr(scope["app"].state, "events", None)  # once the app has started
        if events is None:
            await self.app(scope, receive, send)
            return
        response = await events(Request(scope, receive, send))
        await response(scope, receive, send)
