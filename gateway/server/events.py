"""`/graphql/stream`: GraphQL over Server-Sent Events, graphql-sse's "distinct connections"
mode — one HTTP request per operation, no WebSockets — and its "single connection mode"
(`single_connection.py`: a reservation, one stream, operations posted to it).

A client POSTs (or GETs) a GraphQL request with `Accept: text/event-stream`; the answer is
`text/event-stream`: each result an `event: next` whose `data:` is the result's JSON (a
query using `@defer`/`@stream`: each of its parts, as `incremental.py` writes them), a
`:` comment as a heartbeat every `heartbeat_seconds` of silence, and `event: complete` at
the end. When the process stops, streams end with `retry: <ms>` before `complete`, so a
client reconnects (to another replica). The same credentials, scopes, rate limits,
trusted-documents mode and error masking apply as on `/graphql`, and so does admission
control for queries (`streamed.py`); subscriptions have their own limits (`[live]`), and
a client's open connections here, of either mode, are held to its number of live streams
(`open_streams.py`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from gateway.errors import GatewayError, Overloaded
from gateway.observability import log_context
from gateway.schema.context import Context
from gateway.server.endpoint import GraphQLEndpoint
from gateway.server.held_slot import HeldUntilSent
from gateway.server.incremental import Parts, event
from gateway.server.media import EVENT_STREAM
from gateway.server.open_streams import OpenStreams, event_stream
from gateway.server.outcomes import refusal
from gateway.server.payload import get_payload
from gateway.server.refused import Refused
from gateway.server.single_connection import TOKEN_HEADER, SingleConnection, token_of
from gateway.server.streamed import PastDeadline, stream_of
from gateway.services.live import BalanceWatch, Closing, SlowConsumer

RETRY_MILLISECONDS = 2000  # how soon a client should reconnect when the process stops
Sleep = Callable[[float], Awaitable[None]]


class EventStreams:
    def __init__(
        self,
        endpoint: GraphQLEndpoint,
        live: BalanceWatch,
        sleep: Sleep,
        heartbeat_seconds: float,
        max_streams_per_client: int = 20,
    ) -> None:
        self.endpoint = endpoint
        self.live = live
        self.sleep = sleep
        self.heartbeat_seconds = heartbeat_seconds
        self.open = OpenStreams(max_streams_per_client)
        self.single = SingleConnection(
            endpoint, live, self._with_heartbeats, max_streams_per_client, self.open
        )

    async def __call__(self, request: Request) -> Response:
        try:
            return await self._route(request)
        except GatewayError as exc:
            return refusal(exc)

    async def _route(self, request: Request) -> Response:
        """A reservation's requests (single connection mode), or one operation's stream."""
        if request.method == "PUT":
            return await self.single.reserve(request)
        token = token_of(request)
        if token is None:
            if request.method == "DELETE":
                raise Refused(404, f"No such reservation: send its {TOKEN_HEADER}.")
            return await self._start(request)
        if request.method == "GET":
            return await self.single.connect(request, token)
        if request.method == "POST":
            return await self.single.run(request, token)
        return await self.single.stop(request, token)

    async def _start(self, request: Request) -> Response:
        if EVENT_STREAM not in request.headers.get("accept", ""):
            raise Refused(406, f"Accept {EVENT_STREAM}: this path answers only as events.")
        endpoint = self.endpoint
        principal = await endpoint.principal(request)
        if request.method == "GET":
            payload = get_payload(dict(request.query_params))
        else:
            payload = await endpoint.read_post(request)
        context, results, subscription, release = await stream_of(
            self.endpoint, self.live, request, principal, payload, self.open
        )
        stats = log_context.stats()
        events = self._events(Parts(endpoint.graphql, request, context), context, results, stats)
        if not subscription:  # short, and admitted: its slot held until it is sent
            return HeldUntilSent(event_stream(events), release)
        try:
            return self.open.stream(principal.name, events)
        except BaseException:
            await results.aclose()
            raise

    async def _events(
        self,
        parts: Parts,
        context: Context,
        results: AsyncGenerator[Any, None],
        stats: log_context.RequestStats,
    ) -> AsyncIterator[bytes]:
        """The stream's events; its access line says `ok` once `complete` is sent, and
        `cancelled` when the client left first."""
        stats.outcome = "cancelled"  # until the stream ends as it should
        try:
            try:
                async for result in self._with_heartbeats(results):
                    if result is None:
                        yield b":\n\n"
                        continue
                    yield event("next", await parts.payload(result))
            except PastDeadline:
                yield event("next", parts.late())
            ended = context.stream_end
            if isinstance(ended, Closing):
                yield f"retry: {RETRY_MILLISECONDS}\n\n".encode()
            elif isinstance(ended, SlowConsumer):
                dropped = Overloaded("The stream was dropped: its reader fell behind.")
                yield event("next", {"errors": [error_of(dropped)]})
            yield event("complete")
            stats.outcome = "ok"
        finally:
            await results.aclose()

    async def _with_heartbeats(self, results: AsyncGenerator[Any, None]) -> AsyncIterator[Any]:
        """The results, with None whenever `heartbeat_seconds` pass without one.

        Waits on a future of its own that the first of the two wakes — not
        `asyncio.wait`, whose two coroutines (≈ 1 KB) would stay alive, with everything
        else a silent stream holds, as long as it waits."""
        loop = asyncio.get_running_loop()
        pending: asyncio.Future[Any] | None = None
        try:
            while True:
                if pending is None:
                    pending = asyncio.ensure_future(anext(results))
                pause = asyncio.ensure_future(self.sleep(self.heartbeat_seconds))
                woken = loop.create_future()

                def wake(_: asyncio.Future[Any], woken: asyncio.Future[None] = woken) -> None:
                    if not woken.done():
                        woken.set_result(None)

                pending.add_done_callback(wake)
                pause.add_done_callback(wake)
                try:
                    await woken
                finally:
                    pending.remove_done_callback(wake)
                    pause.cancel()
                if not pending.done():
                    yield None
                    continue
                try:
                    result = pending.result()
                except StopAsyncIteration:
                    return
                pending = None
                yield result
        finally:
            if pending is not None:
                pending.cancel()  # nothing when it is done: then its outcome is read below
                with contextlib.suppress(BaseException):
                    await pending  # the results ended or failed meanwhile: nobody reads it


def error_of(exc: GatewayError) -> dict[str, Any]:
    return {"message": exc.message, "extensions": {"code": exc.code.value}}
