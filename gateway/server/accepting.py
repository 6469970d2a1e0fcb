"""Accepting connections: every one waiting, each turn of the event loop.

uvloop (libuv 1.52 under it) accepts one connection per turn of the loop. On an idle
worker a turn takes microseconds and nobody notices; on a busy one a turn takes tens of
milliseconds, so a crowd of new clients — dashboards opened together, a load balancer
moving traffic, clients reconnecting after a deploy — waits in the kernel's accept queue
for seconds: measured here, 512 clients arriving over a second against a busy worker
queued up to 437 connections, accepted ~50 a second, and their requests (even those
admission would shed at once) waited up to 4 s before the gateway saw them.

`AcceptingLoop` is uvloop's loop whose `create_server(sock=…)` (how uvicorn serves the
sockets we bind) accepts with `AcceptingServer`: when the listening socket is readable it
accepts every waiting connection (at most `backlog` a turn, as asyncio's own loop does) and
hands each to the loop as an accepted socket. Everything else — transports, reading,
writing — is uvloop's. `tests/server/test_accepting.py` shows the one-a-turn behaviour on plain
uvloop (and fails when uvloop changes it, so this module can go) and the crowd accepted
in one turn here.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import uvloop

log = logging.getLogger("gateway.serving")

RETRY_SECONDS = 1.0  # out of file descriptors or memory: accepting pauses this long
PAUSE_ERRORS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
ProtocolFactory = Callable[[], asyncio.BaseProtocol]


class AcceptingServer(asyncio.AbstractServer):
    """A listening socket served by accepting every waiting connection each turn."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        sock: socket.socket,
        protocol_factory: ProtocolFactory,
        backlog: int,
        *,
        retry_seconds: float = RETRY_SECONDS,
    ) -> None:
        self._loop = loop
        self._retry_seconds = retry_seconds
        self._sock = sock
        self._factory = protocol_factory
        self._batch = max(1, backlog)
        self._serving = False
        self._setting_up: set[asyncio.Task[Any]] = set()
        sock.setblocking(False)
        sock.listen(backlog)
        self._start()

    def _start(self) -> None:
        if not self._serving and self._sock.fileno() >= 0:
            self._loop.add_reader(self._sock.fileno(), self.accept_waiting)
            self._serving = True

    def _stop(self) -> None:
        if self._serving:
            self._loop.remove_reader(self._sock.fileno())
            self._serving = False

    def accept_waiting(self) -> None:
        """The listening socket is readable: accept what waits (at most `backlog`)."""
        for _ in range(self._batch):
            try:
                conn, _ = self._sock.accept()
            except (BlockingIOError, InterruptedError):
                return  # none left
            except ConnectionAbortedError:
                continue  # the client gave up while queued
            except OSError as exc:
                if exc.errno not in PAUSE_ERRORS:
                    raise
                log.error(
                    "cannot accept connections (%s): pausing %g s",
                    exc.strerror,
                    self._retry_seconds,
                )
                self._stop()
                self._loop.call_later(self._retry_seconds, self._start)
                return
            self._hand_over(conn)

    def _hand_over(self, conn: socket.socket) -> None:
        conn.setblocking(False)
        if conn.family in (socket.AF_INET, socket.AF_INET6):
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # as uvloop's own
        try:
            protocol = self._factory()
        except Exception as exc:  # a broken protocol: this connection, not the server
            conn.close()
            log.error("a connection could not be set up: %r", exc)
            return
        task = self._loop.create_task(self._set_up(protocol, conn))
        self._setting_up.add(task)  # held until done (the loop keeps only weak references)
        task.add_done_callback(self._setting_up.discard)

    async def _set_up(self, protocol: asyncio.BaseProtocol, conn: socket.socket) -> None:
        try:
            await self._loop.connect_accepted_socket(lambda: protocol, conn)
        except Exception as exc:  # the transport closed itself (and the socket)
            log.error("a connection could not be set up: %r", exc)

    # asyncio.AbstractServer

    def close(self) -> None:
        self._stop()
        self._sock.close()

    async def wait_closed(self) -> None:
        """Connections are the protocol's (uvicorn waits for its own): nothing to wait for."""

    def get_loop(self) -> asyncio.AbstractEventLoop:
        return self._loop

    def is_serving(self) -> bool:
        return self._serving

    async def start_serving(self) -> None:
        self._start()

    async def serve_forever(self) -> None:
        raise NotImplementedError("serve with uvicorn")

    @property
    def sockets(self) -> tuple[socket.socket, ...]:
        return (self._sock,) if self._sock.fileno() >= 0 else ()


def accepting_loop() -> uvloop.Loop:
    """A uvloop loop whose servers on given sockets (`create_server(sock=…)`, no TLS)
    accept every waiting connection each turn; other servers are uvloop's own."""
    import uvloop

    class AcceptingLoop(uvloop.Loop):
        async def create_server(  # type: ignore[override]
            self,
            protocol_factory: ProtocolFactory,
            host: Any = None,
            port: Any = None,
            *,
            sock: socket.socket | None = None,
            ssl: Any = None,
            backlog: int = 100,
            **options: Any,
        ) -> asyncio.AbstractServer:
            if sock is None or ssl is not None or options:
                return await super().create_server(
                    protocol_factory, host, port, sock=sock, ssl=ssl, backlog=backlog, **options
                )
            return AcceptingServer(self, sock, protocol_factory, backlog)

    return AcceptingLoop()
