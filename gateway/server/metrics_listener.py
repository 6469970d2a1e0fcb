"""`[metrics] listen`: `/metrics` on a port of its own, without a key, for a scraper
inside the cluster — and nothing else there: every other path is 404, so the port gives
away no GraphQL, no health, no page. The main port's `/metrics` keeps its `metrics:read`
scope (`edge.py`); both answer from the same `Exposition`.

Under `serve --workers N` each worker has its own registry, so the listener must ask them
all: every worker serves its own exposition on a private Unix socket (`worker_socket`, in
a folder only the gateway's user can enter), and worker 0 alone serves the listener,
asking each socket per scrape (`WorkerExpositions`) and answering them as one, each
series labelled `worker="<slot>"` (`observability/fleet_exposition.py`). A worker that
does not answer in time (being replaced, say) is left out of that scrape, with a warning.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import tempfile
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

import httpx
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route, Router

from gateway.observability import log_context
from gateway.observability.fleet_exposition import labelled
from gateway.server.exposition import metrics_response
from gateway.server.serving import CliError, ConnectionLimits, Server, unix_socket

log = logging.getLogger("gateway.metrics")
Source = Callable[[], Awaitable[bytes]]  # an `Exposition`, or `WorkerExpositions`
MAX_SOCKET_PATH = 107  # bytes: a Unix socket's path on Linux (sun_path, less its NUL)
ASK_SECONDS = 5.0  # a worker's own answer, within a scraper's usual 10 s timeout


def metrics_only(
    source: Source, *, access: bool = True, quiet: bool = False
) -> log_context.RequestContext:
    """An ASGI app answering `GET /metrics` from `source`, 404 everywhere else; each
    request with its id and (unless `quiet` or `access` is off) its access line."""

    async def page(request: Request) -> Response:
        return metrics_response(await source())

    # not even /metrics/ redirects to /metrics: every other path is 404
    app = Router(routes=[Route("/metrics", page, methods=["GET"])], redirect_slashes=False)
    return log_context.RequestContext(app, access=access, quiet=quiet, skip=())


def private_folder(under: str | None = None) -> Path:
    """A new folder for the workers' sockets, that only this user may enter (mkdtemp's
    0700), in the temporary folder — or /tmp when that one's path is too long for a Unix
    socket's; the supervisor removes it when it ends."""
    parents = [under or tempfile.gettempdir(), "/tmp"]  # noqa: S108 (mkdtemp: private)
    for parent in parents:
        # the socket path: parent/bgw-metrics-XXXXXXXX/NN.sock
        if len(os.fsencode(parent)) + len("/bgw-metrics-XXXXXXXX/NN.sock") <= MAX_SOCKET_PATH:
            return Path(tempfile.mkdtemp(prefix="bgw-metrics-", dir=parent))
    raise CliError(
        f"the temporary folder {parents[0]!r} is too long a path for the workers' metrics "
        "sockets: set TMPDIR to a shorter one"
    )


def worker_socket(folder: Path, slot: int) -> Path:
    """Where worker `slot` serves its own exposition (a short path: Unix socket paths are
    limited to about 100 bytes)."""
    return folder / f"{slot}.sock"


class WorkerExpositions:
    """Every worker's exposition, asked concurrently over its socket, as one."""

    def __init__(self, sockets: Sequence[Path], timeout: float = ASK_SECONDS) -> None:
        self.sockets = list(sockets)
        self.timeout = timeout

    async def __call__(self) -> bytes:
        answers = await asyncio.gather(*(self.ask(path) for path in self.sockets))
        found = {str(slot): text for slot, text in enumerate(answers) if text is not None}
        return labelled(found)

    async def ask(self, path: Path) -> str | None:
        transport = httpx.AsyncHTTPTransport(uds=str(path))
        try:
            async with httpx.AsyncClient(transport=transport, timeout=self.timeout) as http:
                answer = await http.get("http://worker/metrics")
                answer.raise_for_status()
                return answer.text
        except httpx.HTTPError as exc:
            log.warning(
                "metrics: the worker at %s did not answer (%s); its series are left out "
                "of this scrape",
                path,
                exc.__class__.__name__,
            )
            return None


def worker_metrics(
    exposition: Source,
    slot: int,
    workers: int,
    folder: Path,
    listener: socket.socket,
    *,
    limits: ConnectionLimits,
    access: bool = True,
) -> list[Server]:
    """Worker `slot`'s servers for the metrics listener: its own exposition on its private
    socket; worker 0 also the listener itself (on `listener`, the socket bound by the
    supervisor, with the gateway's connection `limits`), answering for every worker. The
    others close their copy of `listener`."""
    private = unix_socket(worker_socket(folder, slot))
    own = Server(metrics_only(exposition, quiet=True), private, quiet=True)
    if slot != 0:
        listener.close()
        return [own]
    every = WorkerExpositions([worker_socket(folder, s) for s in range(workers)])
    return [own, Server(metrics_only(every, access=access), listener, limits=limits)]
