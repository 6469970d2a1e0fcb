"""A crowd of new connections is accepted in one turn of a busy loop (server/accepting.py).

Counted in turns of the event loop, not seconds: a busy callback re-schedules itself every
turn, and the test counts the turns until every waiting connection has been accepted.
"""

from __future__ import annotations

import asyncio
import errno
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import uvloop

from gateway.server.accepting import AcceptingServer, accepting_loop

CROWD = 100  # connections waiting in the accept queue before the loop turns once


@contextmanager
def crowd(sock: socket.socket) -> Iterator[list[socket.socket]]:
    """CROWD clients connected (the kernel completed each handshake): all of them waiting
    in the listening socket's accept queue."""
    clients = [socket.create_connection(sock.getsockname()) for _ in range(CROWD)]
    try:
        yield clients
    finally:
        for client in clients:
            client.close()


def listening() -> socket.socket:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(1024)
    return sock


def turns_to_accept(loop_factory: Callable[[], asyncio.AbstractEventLoop]) -> int:
    """Turns of a loop (its server on a given socket, as uvicorn serves ours) until every
    one of CROWD waiting connections has reached its protocol."""

    async def main() -> int:
        loop = asyncio.get_running_loop()
        made: list[asyncio.BaseTransport] = []

        class Counted(asyncio.Protocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                made.append(transport)

        sock = listening()
        with crowd(sock):
            server = await loop.create_server(Counted, sock=sock, backlog=1024)
            turns = 0
            while len(made) < CROWD and turns < 10 * CROWD:
                await asyncio.sleep(0)  # one turn of the loop
                turns += 1
            server.close()
            for transport in made:
                transport.close()
            await asyncio.sleep(0)
        assert len(made) == CROWD
        return turns

    with asyncio.Runner(loop_factory=loop_factory) as runner:
        return runner.run(main())


def test_plain_uvloop_accepts_one_connection_a_turn() -> None:
    """Why accepting.py exists: uvloop's own server accepts one connection per turn, so a
    crowd waits a turn each. When this fails, uvloop accepts them together now: remove
    accepting.py (and this test)."""
    assert turns_to_accept(uvloop.new_event_loop) >= CROWD * 0.9


def test_the_gateways_loop_accepts_the_whole_crowd_in_a_few_turns() -> None:
    assert turns_to_accept(accepting_loop) <= 5


def test_servers_without_a_given_socket_are_uvloops_own() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(asyncio.Protocol, "127.0.0.1", 0)
        assert not isinstance(server, AcceptingServer)
        server.close()

    with asyncio.Runner(loop_factory=accepting_loop) as runner:
        runner.run(main())


class FailingSocket:
    """A listening socket whose accept fails with `errors`, in turn, then has none waiting."""

    def __init__(self, real: socket.socket, errors: list[OSError]) -> None:
        self.real, self.errors = real, errors
        self.family = real.family

    def setblocking(self, flag: bool) -> None:
        self.real.setblocking(flag)

    def listen(self, backlog: int) -> None:
        self.real.listen(backlog)

    def fileno(self) -> int:
        return self.real.fileno()

    def accept(self) -> Any:
        if self.errors:
            raise self.errors.pop(0)
        raise BlockingIOError

    def close(self) -> None:
        self.real.close()


def test_out_of_file_descriptors_pauses_accepting_and_resumes(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """EMFILE (the process's descriptors used up): accepting stops for a while rather than
    spinning on a socket that stays readable, says so in the log, and starts again."""

    async def main() -> None:
        loop = asyncio.get_running_loop()
        sock = FailingSocket(listening(), [ConnectionAbortedError(), OSError(errno.EMFILE, "x")])
        server = AcceptingServer(loop, sock, asyncio.Protocol, 16, retry_seconds=0)  # type: ignore[arg-type]
        assert server.is_serving()
        server.accept_waiting()
        assert not server.is_serving()
        assert sock.errors == []  # the aborted connection was skipped, the loop went on
        for _ in range(3):
            await asyncio.sleep(0)
        assert server.is_serving()
        server.close()
        assert server.sockets == ()
        assert not server.is_serving()

    with asyncio.Runner(loop_factory=accepting_loop) as runner:
        runner.run(main())
    assert "cannot accept connections" in caplog.text


def test_another_accept_error_is_raised_to_the_loop() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        sock = FailingSocket(listening(), [OSError(errno.EBADF, "bad")])
        server = AcceptingServer(loop, sock, asyncio.Protocol, 16)  # type: ignore[arg-type]
        with pytest.raises(OSError, match="bad"):
            server.accept_waiting()
        server.close()

    with asyncio.Runner(loop_factory=accepting_loop) as runner:
        runner.run(main())


def test_a_connection_that_cannot_be_set_up_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    def broken() -> asyncio.Protocol:
        raise RuntimeError("no protocol")

    async def main() -> None:
        loop = asyncio.get_running_loop()
        sock = listening()
        with crowd(sock):
            server = AcceptingServer(loop, sock, broken, 1)
            server.accept_waiting()
            for _ in range(3):
                await asyncio.sleep(0)
            server.close()

    with asyncio.Runner(loop_factory=accepting_loop) as runner:
        runner.run(main())
    assert "a connection could not be set up: RuntimeError('no protocol')" in caplog.text
