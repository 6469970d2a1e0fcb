"""Running uvicorn servers in this process: ports bound first, one way to stop.

`listening_socket` binds before anything is built, so a port in use is one clear line
(`CliError`), not a traceback. `serve_until_stopped` runs one or more servers on their
sockets, prints a ready message once all of them listen, and stops all of them on SIGINT
or SIGTERM (a second signal forces the exit) — quietly: uvicorn's own signal handling
re-raises the signal after shutting down, which ends the process with a KeyboardInterrupt
traceback (and, under make, "make: *** Interrupt").
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import errno
import signal
import socket
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from typing import Any

import uvicorn

from gateway import log_context
from gateway._compat.uvicorn import guarded_protocol


class CliError(Exception):
    """A mistake the operator can fix: printed as one line, exit status 2."""


@dataclass(frozen=True)
class ConnectionLimits:
    """What one client connection may cost before its request is read (see _compat/uvicorn.py)."""

    max_header_bytes: int = 32 * 1024
    header_timeout_seconds: float = 10.0
    keep_alive_seconds: float = 5.0


class Server(uvicorn.Server):
    """A uvicorn server whose signals `serve_until_stopped` handles. `quiet`: its start and
    stop lines stay out of the log (the demo's embedded simulator)."""

    def __init__(
        self,
        app: Any,
        sock: socket.socket,
        *,
        limits: ConnectionLimits = ConnectionLimits(),
        quiet: bool = False,
    ) -> None:
        host, port = sock.getsockname()[:2]
        protocol = guarded_protocol(limits.max_header_bytes, limits.header_timeout_seconds)
        super().__init__(
            uvicorn.Config(
                app,
                host=host,
                port=port,
                http=protocol,
                timeout_keep_alive=int(limits.keep_alive_seconds) or 1,
                log_config=None,
                log_level=None,
                access_log=False,  # the gateway writes its own (log_context.RequestContext)
                server_header=False,
            )
        )
        self.socket = sock
        self.quiet = quiet

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def listening_socket(host: str, port: int, option: str, make_var: str) -> socket.socket:
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as exc:
        reason = "is already in use" if exc.errno == errno.EADDRINUSE else f"failed: {exc.strerror}"
        raise CliError(
            f"{host}:{port} {reason}; choose another port with {option} N "
            f"({make_var}=N with make run)"
        ) from None
    return sock


def url_of(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def serve_until_stopped(servers: list[Server], ready: str) -> None:
    run_loop(_until_stopped(servers, ready))


async def _until_stopped(servers: list[Server], ready: str) -> None:
    loop = asyncio.get_running_loop()

    def stop() -> None:
        for server in servers:
            if server.should_exit:
                server.force_exit = True
            server.should_exit = True

    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop)
    tasks = [
        asyncio.create_task(server.serve(sockets=[server.socket]), context=_context(server))
        for server in servers
    ]
    while not all(server.started for server in servers):
        if any(task.done() for task in tasks):
            break
        await asyncio.sleep(0.02)
    else:
        print(ready, flush=True)
    await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    stop()  # one server ended (or failed to start): end the others too
    await asyncio.gather(*tasks)
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.remove_signal_handler(signum)
    if not all(server.started for server in servers):
        raise CliError("the server did not start: the log above says why")


def _context(server: Server) -> contextvars.Context:
    context = contextvars.copy_context()
    context.run(log_context.quiet.set, server.quiet)
    return context


def run_loop(main: Coroutine[Any, Any, None]) -> None:
    """uvloop where it is installed (a third less CPU per request here), else asyncio."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(main)
    else:
        uvloop.run(main)
