"""Results as they arrive: an operation using `@defer` / `@stream`, answered in parts.

The first part is the initial result, with `pending` (what is still to come, each with an
`id` and a `path`) and `hasNext: true`. Each later part carries what became known since:
streamed list items (`incremental: [{"id", "items"}]`), deferred fragments (`incremental:
[{"id", "data"}]`), and what finished (`completed: [{"id"}]`, with `errors` when it
failed) — graphql-js 17's format, as graphql-core 3.3 produces it — until `hasNext: false`.
Every part's errors are masked and coded as a single answer's are (`GatewayGraphQL.mask`).

Two framings, chosen by `Accept` (`media.streaming`):

- `multipart/mixed; boundary="-"`: the body opens with `---`; each part follows as CRLF,
  `Content-Type: application/json; charset=utf-8` CRLF, `Content-Length: N` CRLF, CRLF,
  the JSON, CRLF, `---`; and `--` CRLF follows the last (the body ends `-----` CRLF).
  Apollo Client 4 (`GraphQL17Alpha9Handler`), urql and GraphiQL read it.
- `text/event-stream` (graphql-sse, distinct connections): `event: next` with the part as
  `data:`, then `event: complete`.

The request deadline bounds the whole answer: past it, the last part completes whatever is
still pending with an OVERLOADED error, so a client is never left waiting.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from typing import Any

import orjson
from graphql import (
    GraphQLError,
    InitialIncrementalExecutionResult,
    SubsequentIncrementalExecutionResult,
)
from starlette.requests import Request

from gateway.errors import Overloaded
from gateway.schema.context import Context
from gateway.server.media import MULTIPART
from gateway.server.view import GatewayGraphQL

LATE = Overloaded("Not known within the request's deadline: retry shortly.", retry_after_seconds=1)
BOUNDARY = b"-"


def event(name: str, payload: Any = None) -> bytes:
    """One server-sent event (graphql-sse: `next` with a result, `complete`)."""
    data = b"" if payload is None else orjson.dumps(payload)
    return b"event: " + name.encode() + b"\ndata: " + data + b"\n\n"


class Framing:
    """How parts are written into one HTTP body."""

    def __init__(self, media: str) -> None:
        self.multipart = media == MULTIPART
        self.media_type = 'multipart/mixed; boundary="-"' if self.multipart else media

    @property
    def opening(self) -> bytes:
        return b"--" + BOUNDARY if self.multipart else b""

    def part(self, payload: dict[str, Any]) -> bytes:
        if not self.multipart:
            return event("next", payload)
        body = orjson.dumps(payload)
        head = b"\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: %d\r\n\r\n"
        return head % len(body) + body + b"\r\n--" + BOUNDARY

    @property
    def closing(self) -> bytes:
        return b"--\r\n" if self.multipart else event("complete")


class Parts:
    """One operation's results as the JSON payloads a client receives, masked."""

    def __init__(self, view: GatewayGraphQL, request: Request, context: Context) -> None:
        self.view = view
        self.request = request
        self.context = context
        self.pending: dict[str, None] = {}  # ids announced and not yet completed, in order
        self.has_next = True

    async def payload(self, result: Any) -> dict[str, Any]:
        if isinstance(result, SubsequentIncrementalExecutionResult):
            return self._subsequent(result)
        if self.context.errors:  # a resolver's deferred errors, which belong to the first
            result.errors = [*(result.errors or []), *self.context.errors]
            self.context.errors.clear()
        payload: dict[str, Any] = dict(await self.view.process_result(self.request, result))
        if isinstance(result, InitialIncrementalExecutionResult):
            payload["pending"] = [p.formatted for p in result.pending]
            payload["hasNext"] = self.has_next = result.has_next
            self.pending.update((p.id, None) for p in result.pending)
        else:
            self.has_next = False
        return payload

    def _subsequent(self, result: SubsequentIncrementalExecutionResult) -> dict[str, Any]:
        for part in (*(result.incremental or ()), *(result.completed or ())):
            if part.errors:
                part.errors = self.view.mask(part.errors)
        self.pending.update((p.id, None) for p in result.pending or ())
        for done in result.completed or ():
            self.pending.pop(done.id, None)
        self.has_next = result.has_next
        return dict(result.formatted)

    def late(self) -> dict[str, Any]:
        """The last part when the deadline passes: everything pending failed."""
        (error,) = self.view.mask([GraphQLError(LATE.message, original_error=LATE)])
        self.has_next = False
        return {
            "hasNext": False,
            "completed": [{"id": i, "errors": [error.formatted]} for i in self.pending],
        }


async def body(
    parts: Parts,
    first: Any,
    rest: AsyncGenerator[Any, None],
    framing: Framing,
    deadline: float,
    ended: Callable[[bool], None],
) -> AsyncIterator[bytes]:
    """The framed parts, the first already known; `ended(True)` once the last is sent,
    `ended(False)` if the client left first. The results are closed either way."""
    finished = False
    try:
        yield framing.opening + framing.part(await parts.payload(first))
        while parts.has_next:
            try:
                async with asyncio.timeout_at(deadline):
                    result = await anext(rest)
            except TimeoutError:
                yield framing.part(parts.late())
                break
            except StopAsyncIteration:
                break
            yield framing.part(await parts.payload(result))
        yield framing.closing
        finished = True
    finally:
        await rest.aclose()
        ended(finished)
