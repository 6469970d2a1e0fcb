"""Responses whose reader stopped reading: dropped, their connection closed.

uvicorn writes a response only as fast as the client reads it: once the connection's
buffers are full, a write waits for room. A client that stops reading an event stream
(a frozen tab, a stuck proxy) would hold its connection, its task and its buffers for ever.
So, for `/graphql` and `/graphql/stream`:

- an event stream's buffers are bounded: about `buffer_bytes` wait in the process (the
  transport's high-water mark) and about as many in the kernel (the socket's send buffer)
  — instead of the megabytes Linux lets a socket queue;
- a write that waits longer than `write_timeout` ends the response: the connection is cut
  at once (reset, its queued bytes dropped: a plain close would wait for them to drain),
  the app sees the client gone, and the request is counted `slow_consumer`.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
from collections.abc import Awaitable, Callable, Collection, MutableMapping
from typing import Any

from gateway._compat.uvicorn import transport_of
from gateway.observability import log_context
from gateway.server.request_metrics import STREAM_PATH

log = logging.getLogger("gateway.slow_readers")
RESET_ON_CLOSE = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close drops what is queued

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class SlowReaders:
    def __init__(
        self,
        app: ASGIApp,
        *,
        write_timeout: float,
        buffer_bytes: int,
        paths: Collection[str] = ("/graphql", STREAM_PATH),
    ) -> None:
        self.app = app
        self.write_timeout = write_timeout
        self.buffer_bytes = buffer_bytes
        self.paths = frozenset(paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] not in self.paths:
            await self.app(scope, receive, send)
            return
        transport = transport_of(scope)
        if transport is None:  # not served by our protocol (an in-process test client)
            await self.app(scope, receive, send)
            return
        if scope["path"] == STREAM_PATH:
            self._bound(transport)
        dropped = False

        async def timed_send(message: Message) -> None:
            nonlocal dropped
            if dropped:
                return  # the connection is gone: as uvicorn does for a client that left
            try:
                async with asyncio.timeout(self.write_timeout):
                    await send(message)
            except TimeoutError:
                dropped = True
                log.info(
                    "dropped a response whose reader stopped: a write waited %g s",
                    self.write_timeout,
                )
                self._cut(transport)  # the app learns the client is gone, as if it had left

        try:
            await self.app(scope, receive, timed_send)
        finally:
            if dropped:
                log_context.stats().outcome = "slow_consumer"

    @staticmethod
    def _cut(transport: asyncio.Transport) -> None:
        """Close at once with a reset: a plain close would queue the FIN behind the bytes
        the reader never took, and the kernel would keep them (and the connection, as the
        client sees it) for minutes."""
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, RESET_ON_CLOSE)
        transport.abort()

    def _bound(self, transport: asyncio.Transport) -> None:
        transport.set_write_buffer_limits(high=self.buffer_bytes)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self.buffer_bytes)
