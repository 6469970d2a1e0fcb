"""A response-cache hit answered before the rest of the stack reads the request.

A dashboard polling the same request is, most of the time, a stored answer: going
through tracing, the slow-reader guard, CORS, the router, Starlette's request objects, a
JSON parse of the body and the endpoint's checks costs several times what finding and
sending the stored bytes does. `CachedAnswers` sits right inside `RequestContext` (so the
request id, the access line and the request metrics are the same as for any request):
for a POST to `/graphql` whose body arrived whole, it asks the endpoint for the stored
answer (`GraphQLEndpoint.answer_from_cache`: same caller, same body byte for byte, the
same checks in effect, authenticated, admitted and within its rate) and sends it;
anything else — a miss, a refusal, a body in several parts — goes on down the stack with
its body handed on as it came. Not installed when tracing is on (a hit would have no
span); a request carrying an `Origin` goes the whole way when CORS is configured (its
answer needs CORS headers).
"""

from __future__ import annotations

from typing import Any

from gateway import log_context
from gateway.log_context import ASGIApp, Message, Receive, Scope, Send

GRAPHQL_PATH = "/graphql"


class CachedAnswers:
    def __init__(self, app: ASGIApp, *, cors: bool = False) -> None:
        self.app = app
        self.cors = cors

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        endpoint = self._endpoint(scope)
        if endpoint is None or (self.cors and _has_origin(scope)):
            await self.app(scope, receive, send)
            return
        message = await receive()
        answer = None
        if message["type"] == "http.request" and not message.get("more_body", False):
            answer = await endpoint.answer_from_cache(scope, message.get("body", b""))
        if answer is None:
            await self.app(scope, _replaying(message, receive), send)
            return
        stored = answer.stored
        stats = log_context.stats()
        stats.operation_type, stats.operation_name = "query", stored.operation_name
        stats.accounts, stats.response_cache, stats.outcome = stored.accounts, "hit", "ok"
        try:
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [
                        (b"content-length", b"%d" % len(stored.body)),
                        (b"content-type", answer.media.encode()),
                        (b"cache-control", b"no-store"),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": stored.body})
        finally:
            answer.release()

    @staticmethod
    def _endpoint(scope: Scope) -> Any:
        """The endpoint, for a POST to /graphql once the app has started (else None)."""
        if scope["type"] != "http" or scope["path"] != GRAPHQL_PATH or scope["method"] != "POST":
            return None
        endpoint = getattr(scope["app"].state, "graphql", None)
        return endpoint if getattr(endpoint, "response_cache", None) is not None else None


def _has_origin(scope: Scope) -> bool:
    return any(name == b"origin" for name, _ in scope["headers"])


def _replaying(first: Message, receive: Receive) -> Receive:
    """`receive` with `first` (already taken from it) handed out again, first."""
    pending = [first]

    async def replayed() -> Message:
        return pending.pop() if pending else await receive()

    return replayed
