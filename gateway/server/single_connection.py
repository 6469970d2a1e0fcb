"""graphql-sse's "single connection mode" at `/graphql/stream`: one event stream carries
the results of every operation a client runs, for browsers over HTTP/1 (six connections a
host) and `EventSource`, which cannot send headers.

    PUT    /graphql/stream                      a reservation: 201 and a one-time token
    GET    /graphql/stream  (token)             the stream, once per reservation
    POST   /graphql/stream  (token)             an operation, `extensions.operationId` its
                                                id: 202; its results come on the stream as
                                                `event: next` `{"id", "payload"}`, then
                                                `event: complete` `{"id"}`
    DELETE /graphql/stream?operationId=… (token)  stops one: 200

The token travels as the `x-graphql-event-stream-token` header (or `?token=` for
`EventSource`). A reservation belongs to the client that made it: its operations must come
with the same credentials, and it lives in this process — a load balancer must send a
client's requests to one replica (distinct connections mode has no such need). A
reservation not connected within `RESERVATION_SECONDS` lapses; a client holds at most
`[live] max_streams_per_client` of them; the stream ends, with every operation on it, when
the client leaves.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from gateway.server.endpoint import GraphQLEndpoint
from gateway.server.incremental import Parts, event
from gateway.server.open_streams import OpenStreams
from gateway.server.refused import Refused
from gateway.server.streamed import PastDeadline, stream_of
from gateway.services.live import QUEUE_SIZE, BalanceWatch

TOKEN_HEADER = "x-graphql-event-stream-token"
RESERVATION_SECONDS = 60.0
MAX_OPERATIONS = 50  # running at once on one stream


@dataclass
class Reservation:
    client: str
    made_at: float
    connected: bool = False
    # Bounded: an operation whose events nobody takes waits, and its live subscription
    # falls behind and is dropped (`services/live.py`), instead of buffering for nobody.
    events: asyncio.Queue[bytes] = field(default_factory=lambda: asyncio.Queue(QUEUE_SIZE))
    operations: dict[str, asyncio.Task[None]] = field(default_factory=dict)


def token_of(request: Request) -> str | None:
    return request.headers.get(TOKEN_HEADER) or request.query_params.get("token")


class SingleConnection:
    def __init__(
        self,
        endpoint: GraphQLEndpoint,
        live: BalanceWatch,
        with_heartbeats: Callable[[AsyncGenerator[Any, None]], AsyncIterator[Any]],
        max_per_client: int,
        open_streams: OpenStreams,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.endpoint = endpoint
        self.live = live
        self.with_heartbeats = with_heartbeats
        self.max_per_client = max_per_client
        self.open = open_streams
        self.monotonic = monotonic
        self.reservations: dict[str, Reservation] = {}

    async def reserve(self, request: Request) -> Response:
        principal = await self.endpoint.principal(request)
        self._lapse()
        held = sum(1 for r in self.reservations.values() if r.client == principal.name)
        if held >= self.max_per_client:
            raise Refused(429, f"At most {self.max_per_client} event streams per client.")
        token = secrets.token_urlsafe(24)
        self.reservations[token] = Reservation(principal.name, self.monotonic())
        return Response(token, status_code=201, media_type="text/plain")

    async def connect(self, request: Request, token: str) -> Response:
        reservation = self._held(token)
        if reservation.connected:
            raise Refused(409, "This reservation already has its stream.")
        response = self.open.stream(reservation.client, self._stream(token, reservation))
        reservation.connected = True
        return response

    async def run(self, request: Request, token: str) -> Response:
        """An operation on the reservation's stream: validated here (its errors answered
        as on `/graphql`), its results sent there."""
        endpoint = self.endpoint
        principal = await endpoint.principal(request)
        reservation = self._held(token)
        if reservation.client != principal.name:
            raise Refused(404, "No such reservation.")  # another client's: never said
        payload = await endpoint.read_post(request)
        extensions = payload.get("extensions")
        operation_id = extensions.get("operationId") if isinstance(extensions, dict) else None
        if not isinstance(operation_id, str) or not operation_id:
            raise Refused(400, "`extensions.operationId` (a string) names the operation.")
        room_for(reservation, operation_id)
        context, results, _, release = await stream_of(
            endpoint, self.live, request, principal, payload
        )
        try:  # again: another post of the same id may have got in while this one waited
            room_for(reservation, operation_id)
        except Refused:
            await results.aclose()
            release()
            raise
        parts = Parts(endpoint.graphql, request, context)

        async def send() -> None:
            try:
                try:
                    async for result in results:
                        body = {"id": operation_id, "payload": await parts.payload(result)}
                        await reservation.events.put(event("next", body))
                except PastDeadline:
                    body = {"id": operation_id, "payload": parts.late()}
                    await reservation.events.put(event("next", body))
                await reservation.events.put(event("complete", {"id": operation_id}))
            finally:
                await results.aclose()

        def ended(task: asyncio.Task[None]) -> None:
            """However it ended — cancelled before it ever ran (a DELETE, the client gone)
            included: its admission slot given back, its id free again."""
            release()
            if reservation.operations.get(operation_id) is task:
                del reservation.operations[operation_id]

        task = asyncio.ensure_future(send())
        task.add_done_callback(ended)
        reservation.operations[operation_id] = task
        return Response(status_code=202)

    async def stop(self, request: Request, token: str) -> Response:
        principal = await self.endpoint.principal(request)
        reservation = self._held(token)
        if reservation.client != principal.name:
            raise Refused(404, "No such reservation.")
        task = reservation.operations.get(request.query_params.get("operationId", ""))
        if task is not None:
            task.cancel()
        return Response(status_code=200)

    def _held(self, token: str) -> Reservation:
        self._lapse()
        reservation = self.reservations.get(token)
        if reservation is None:
            raise Refused(404, "No such reservation: PUT /graphql/stream makes one.")
        return reservation

    def _lapse(self) -> None:
        """Reservations never connected within `RESERVATION_SECONDS` are forgotten, and
        the operations posted to them stopped."""
        now = self.monotonic()
        for token, reservation in list(self.reservations.items()):
            if not reservation.connected and now - reservation.made_at > RESERVATION_SECONDS:
                del self.reservations[token]
                for task in reservation.operations.values():
                    task.cancel()

    async def _stream(self, token: str, reservation: Reservation) -> AsyncIterator[bytes]:
        async def events() -> AsyncGenerator[bytes, None]:
            while True:
                yield await reservation.events.get()

        try:
            async for chunk in self.with_heartbeats(events()):
                yield b":\n\n" if chunk is None else chunk
        finally:  # the client left: its operations stop, its reservation is spent
            self.reservations.pop(token, None)
            for task in reservation.operations.values():
                task.cancel()
            running = list(reservation.operations.values())
            if running:
                await asyncio.wait(running)


def room_for(reservation: Reservation, operation_id: str) -> None:
    """Refused unless `operation_id` is free on `reservation` and it may run one more."""
    if operation_id in reservation.operations:
        raise Refused(409, f"Operation {operation_id!r} is already running.")
    if len(reservation.operations) >= MAX_OPERATIONS:
        raise Refused(429, f"At most {MAX_OPERATIONS} operations at once on one stream.")
