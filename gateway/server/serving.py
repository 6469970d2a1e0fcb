"""Running uvicorn servers in this process: ports bound first, one way to stop.

`listening_socket` binds before anything is built, so a port in use is one clear line
(`CliError`), not a traceback. `serve_until_stopped` runs one or more servers on their
sockets, says when all of them listen, and stops all of them on a signal — quietly:
uvicorn's own signal handling re-raises the signal after shutting down, which ends the
process with a KeyboardInterrupt traceback (and, under make, "make: *** Interrupt").

SIGTERM (what an orchestrator sends) drains first: a server with a `Draining` switch sets
it (its `/readyz` turns 503), keeps serving for `drain_seconds` so load balancers notice,
then closes its listener; requests in flight then get `shutdown_timeout_seconds` to finish
(uvicorn's graceful timeout) before they are cancelled, and the app's lifespan closes its
clients and stores. SIGINT (Ctrl-C at a terminal) skips the drain window. A second signal
ends the drain at once; a third forces the exit.
"""

from __future__ import annotations

import asyncio
import contextvars
import errno
import logging
import math
import signal
import socket
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn

from gateway._compat.uvicorn import SignalsLeftAlone, forwarded_client, guarded_protocol
from gateway.observability import log_context
from gateway.server.accepting import accepting_loop
from gateway.server.memory_release import MemoryRelease
from gateway.server.readiness import Draining

log = logging.getLogger("gateway.serving")


class CliError(Exception):
    """A mistake the operator can fix: printed as one line, exit status 2."""


@dataclass(frozen=True)
class ConnectionLimits:
    """What one client connection may cost before its request is read (see _compat/uvicorn.py)."""

    max_header_bytes: int = 32 * 1024
    header_timeout_seconds: float = 10.0
    keep_alive_seconds: float = 5.0


class Server(SignalsLeftAlone):
    """A uvicorn server whose signals `serve_until_stopped` handles. `quiet`: its start and
    stop lines stay out of the log (the demo's embedded simulator)."""

    def __init__(
        self,
        app: Any,
        sock: socket.socket,
        *,
        limits: ConnectionLimits = ConnectionLimits(),
        quiet: bool = False,
        draining: Draining | None = None,
        drain_seconds: float = 0.0,
        shutdown_timeout_seconds: float | None = None,
    ) -> None:
        # A Unix socket (a worker's private metrics, `metrics_listener.py`) has a path.
        where = (
            {"uds": sock.getsockname()}
            if sock.family == socket.AF_UNIX
            else dict(zip(("host", "port"), sock.getsockname()[:2], strict=True))
        )
        state = getattr(app, "state", None)  # app.py's
        early_shed = getattr(state, "early_shed", None)
        self.memory_release: MemoryRelease | None = getattr(state, "memory_release", None)
        protocol = guarded_protocol(
            limits.max_header_bytes,
            limits.header_timeout_seconds,
            None if early_shed is None else early_shed.answer,
        )
        super().__init__(
            uvicorn.Config(
                app,
                **where,
                http=protocol,
                timeout_keep_alive=int(limits.keep_alive_seconds) or 1,
                log_config=None,
                log_level=None,
                access_log=False,  # the gateway writes its own (log_context.RequestContext)
                server_header=False,
                timeout_graceful_shutdown=None
                if shutdown_timeout_seconds is None
                else math.ceil(shutdown_timeout_seconds),  # uvicorn takes whole seconds
            )
        )
        if early_shed is not None and self.config.proxy_headers:  # as uvicorn reads them
            early_shed.record.forwarded_client = forwarded_client(self.config.forwarded_allow_ips)
        self.socket = sock
        self.quiet = quiet
        self.draining = draining
        self.drain_seconds = drain_seconds

    def ticked(self, connections: int) -> None:
        if self.memory_release is None:
            return
        try:
            self.memory_release.seen(connections)
        except Exception:  # a bug there must not stop the server (uvicorn's tick raises on)
            log.exception("memory release stopped")
            self.memory_release = None

    def stop(self, *, drain: bool) -> None:
        """One signal's worth of stopping: drain (SIGTERM, once), then exit, then force."""
        if self.should_exit:
            self.force_exit = True
        elif drain and self.draining is not None and not self.draining.active:
            self.draining.start()
            log.info(
                "draining: /readyz answers 503; serving %g s more, then stopping",
                self.drain_seconds,
            )
            asyncio.get_running_loop().call_later(self.drain_seconds, self._end_drain)
        else:
            self.should_exit = True

    def _end_drain(self) -> None:
        self.should_exit = True


def listening_socket(
    host: str,
    port: int,
    option: str = "",
    make_var: str = "",
    *,
    reuse_port: bool = False,
    fix: str | None = None,
    host_fix: str = "check the address given with --host",
) -> socket.socket:
    """Bound (uvicorn listens on it). `reuse_port`: one of several processes' sockets on the
    same port, the kernel spreading new connections across them (`workers.py`). A port in
    use names `option` and `make_var` as what moves it — or says `fix` instead; any other
    failure (a host that does not resolve, an address not this machine's) says `host_fix`."""
    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            fix = fix or f"choose another port with {option} N ({make_var}=N with make run)"
            raise CliError(f"{where} is already in use; {fix}") from None
        raise CliError(f"{where} failed: {exc.strerror}; {host_fix}") from None
    return sock


def unix_socket(path: Path) -> socket.socket:
    """Bound at `path` (one left by a process that ended is replaced), for this user only."""
    path.unlink(missing_ok=True)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(path))
    path.chmod(0o600)
    return sock


def url_of(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def serve_until_stopped(servers: list[Server], ready: str | Callable[[], None]) -> None:
    """`ready`: printed (or called) once every server listens."""
    run_loop(_until_stopped(servers, ready))


async def _until_stopped(servers: list[Server], ready: str | Callable[[], None]) -> None:
    loop = asyncio.get_running_loop()

    def stop(drain: bool) -> None:
        # While the gateway drains, a server without a drain of its own (the embedded
        # simulator under `make run`: the gateway's upstreams) keeps serving; it ends with it.
        draining = [s for s in servers if drain and s.draining is not None]
        for server in draining or servers:
            server.stop(drain=drain)

    loop.add_signal_handler(signal.SIGINT, stop, False)
    loop.add_signal_handler(signal.SIGTERM, stop, True)
    tasks = [
        asyncio.create_task(server.serve(sockets=[server.socket]), context=_context(server))
        for server in servers
    ]
    while not all(server.started for server in servers):
        if any(task.done() for task in tasks):
            break
        await asyncio.sleep(0.02)
    else:
        if callable(ready):
            ready()
        else:
            print(ready, flush=True)
    await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    for server in servers:  # one server ended (or failed to start): end the others too
        server.should_exit = True
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
    """uvloop where it is installed (a third less CPU per request here), else asyncio;
    uvloop's with every waiting connection accepted each turn (`accepting.py`)."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(main)
    else:
        uvloop.run(main, loop_factory=accepting_loop)
