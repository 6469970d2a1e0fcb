"""A response-cache hit answered before the rest of the stack reads the request.

A dashboard polling the same request is, most of the time, a stored answer: going through
CORS, the router, Starlette's request objects, a JSON parse of the body and the endpoint's
checks costs several times what finding and sending the stored bytes does. `CachedAnswers`
sits inside `RequestContext` (the request id, the access line and the request metrics are
those of any request) and the slow-reader guard (its answer is written under the same
write timeout). For a POST to `/graphql` it asks the endpoint, in the whole way's order:

1. `before_body`: the checks made before a body is read — headers, the caller, its rate.
   Anything refused, or a body of no declared length, too large or awaiting `100 Continue`,
   goes the whole way untouched (refused there, in its words, without waiting for a body).
2. The body, read within `body_timeout_seconds` (else 408, as the whole way answers).
3. `answer_from_cache`: the stored answer for this caller and this body byte for byte,
   admitted as a query — or, when none is stored but an identical request is running,
   that request's answer, waited for without a slot (`shared_answers.py`) — and sent.
   Otherwise (a miss, no room, a body in several parts)
   the request goes on down the stack with its body handed on as it came, and with what
   was learnt (who asks, the rate token taken, the key looked up), so nothing is done
   twice.

Not installed when tracing is on; a request carrying an `Origin` goes the whole way when
CORS is configured (its answer needs CORS headers).
"""

from __future__ import annotations

import asyncio
from typing import Any

from gateway.observability import log_context
from gateway.observability.log_context import ASGIApp, Message, Receive, Scope, Send
from gateway.server.media import content_type

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
        learnt = await endpoint.before_body(scope)
        if learnt is None:
            await self.app(scope, receive, send)
            return
        try:
            async with asyncio.timeout(endpoint.body_timeout_seconds):
                message = await receive()
        except TimeoutError:
            await endpoint.body_too_slow()(scope, receive, send)
            return
        stored = None
        if message["type"] == "http.request" and not message.get("more_body", False):
            stored = await endpoint.answer_from_cache(learnt, message.get("body", b""))
        if stored is None:
            await self.app(scope, _replaying(message, receive), send)
            return
        stats = log_context.stats()
        stats.operation_type, stats.operation_name = "query", stored.operation_name
        stats.accounts, stats.outcome = stored.accounts, "ok"  # `response_cache`: said there
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-length", b"%d" % len(stored.body)),
                    (b"content-type", content_type(learnt.media).encode()),
                    (b"cache-control", b"no-store"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": stored.body})

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
