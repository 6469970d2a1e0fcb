"""What every log line knows about the request it was made in, and the access line.

- `RequestContext`, the outermost ASGI middleware, gives each HTTP request a fresh id (sent
  back as `X-Request-Id`), clears the client name (the endpoint names the client once it is
  known) and starts a `RequestStats` that the layers below fill in: the GraphQL operation,
  the accounts asked, upstream calls made, cache hits, stale answers and misses. All live in
  context variables, so every record made while serving the request — and every task it
  starts — sees them. When the answer is sent it writes the request's one access line on
  the `gateway.access` logger (method, path, status, duration, bytes and those stats).
- The log-record factory only *adds* `request_id` and `client` to every record, whatever
  logger made it; it never rewrites a record's message or arguments.

How lines are rendered and redacted is `log_format`'s business.
"""

from __future__ import annotations

import logging
import secrets as random_ids
import time
from collections.abc import Awaitable, Callable, Collection, MutableMapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

request_id: ContextVar[str] = ContextVar("request_id", default="-")
client_name: ContextVar[str] = ContextVar("client_name", default="-")
# A server whose routine lines (access, start and stop) stay out of the log: the demo's
# embedded simulator, whose lines would drown the gateway's. Its warnings still show.
quiet: ContextVar[bool] = ContextVar("quiet", default=False)

access_log = logging.getLogger("gateway.access")
HEALTH_PATHS = frozenset({"/healthz", "/readyz"})
MAX_NAME = 100  # an operation name in the log is cut to this many characters
MAX_PATH = 200
CLIENT_CLOSED = 499  # nginx's "client closed request": the client left before its answer


@dataclass
class RequestStats:
    """What one request did, filled in as it happens (the access line, metrics, spans)."""

    operation_type: str | None = None  # query | mutation | subscription
    operation_name: str | None = None  # as the client sent it, cut to MAX_NAME
    accounts: int = 0  # accounts whose balance or history was asked for
    upstream_calls: int = 0  # attempts this request made itself (not shared ones it joined)
    cache_hits: int = 0
    cache_stale: int = 0
    cache_misses: int = 0
    response_cache: str | None = None  # hit | miss, when the response cache was asked
    failures: int = 0  # provider failures answered in place
    error_codes: list[str] = field(default_factory=list)  # of the GraphQL errors returned
    outcome: str | None = None  # ok | partial | client_error | refused | internal | cancelled
    reason: str | None = None  # why it was refused
    document: Any = None  # the parsed GraphQL document (for a trace, literals removed)

    def fields(self) -> dict[str, Any]:
        return {
            "outcome": self.outcome,
            "reason": self.reason,
            "operation_type": self.operation_type,
            "operation_name": self.operation_name,
            "accounts": self.accounts,
            "upstream_calls": self.upstream_calls,
            "cache_hits": self.cache_hits,
            "cache_stale": self.cache_stale,
            "cache_misses": self.cache_misses,
            "response_cache": self.response_cache,
            "failures": self.failures,
            "errors": self.error_codes,
        }


_stats: ContextVar[RequestStats | None] = ContextVar("request_stats", default=None)


def stats() -> RequestStats:
    """This request's stats (outside a request: a throwaway one, so callers never check)."""
    return _stats.get() or RequestStats()


def set_stats(current: RequestStats) -> None:
    """`current` is this request's stats from here on (in this context)."""
    _stats.set(current)


def printable_text(text: str, limit: int) -> str:
    """Client text fit for a log line: cut to `limit`, control characters replaced (a
    newline in a path or a name must not start a forged line)."""
    text = text[:limit]
    return text if text.isprintable() else "".join(c if c.isprintable() else "?" for c in text)


def note_operation(operation_type: str, name: str | None) -> None:
    current = stats()
    current.operation_type = operation_type
    current.operation_name = printable_text(name, MAX_NAME) if name else None


_base_factory = logging.getLogRecordFactory()


def _factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
    record = _base_factory(*args, **kwargs)
    record.request_id = request_id.get()
    record.client = client_name.get()
    return record


def install_record_factory() -> None:
    """Give every record made from now on the request id and client name."""
    logging.setLogRecordFactory(_factory)


Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


_ids = bytearray()  # random bytes drawn from the OS a few thousand ids at a time


def new_request_id() -> str:
    """16 hex digits from the OS's random source (one system call per 512 ids)."""
    if not _ids:
        _ids.extend(random_ids.token_bytes(8 * 512))
    chunk = _ids[-8:]
    del _ids[-8:]
    return chunk.hex()


class RequestContext:
    """ASGI middleware: a request id per HTTP request, returned as `X-Request-Id`, fresh
    stats, and one access line when it ends — unless `access` is off, the path is one of
    `skip` (the health checks, by default), or the server is `quiet`."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        quiet: bool = False,
        access: bool = True,
        skip: Collection[str] = HEALTH_PATHS,
        observe: Callable[[Scope, int, float, RequestStats], None] | None = None,
    ) -> None:
        self.app = app
        self.quiet = quiet
        self.access = access and not quiet
        self.skip = frozenset(skip)
        self.observe = observe

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        rid = new_request_id()
        request_id.set(rid)
        client_name.set("-")
        quiet.set(self.quiet)
        stats = RequestStats()
        set_stats(stats)
        status, sent = 0, 0

        async def send_with_id(message: Message) -> None:
            nonlocal status, sent
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [*message.get("headers", ()), (b"x-request-id", rid.encode())]
                message = {**message, "headers": headers}
            elif message["type"] == "http.response.body":
                sent += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            status = status or unsent_status(stats)
            if self.observe is not None:
                self.observe(scope, status, time.perf_counter() - started, stats)
            if self.access and scope["path"] not in self.skip:
                write_access_line(scope, status, sent, started, stats)


def unsent_status(stats: RequestStats) -> int:
    """The status of a request that sent nothing: the client left first (499), or the
    server answers 500 itself."""
    return CLIENT_CLOSED if stats.outcome == "cancelled" else 500


def write_access_line(
    scope: Scope, status: int, sent: int, started: float, stats: RequestStats
) -> None:
    duration_ms = round((time.perf_counter() - started) * 1000, 2)
    method, path = printable_text(scope["method"], 16), printable_text(scope["path"], MAX_PATH)
    fields: dict[str, Any] = {
        "method": method,
        "path": path,
        "status": status,
        "duration_ms": duration_ms,
        "bytes": sent,
        **stats.fields(),
        "remote": (scope.get("client") or ("-",))[0],
    }
    words = [f'"{method} {path}" {status} {duration_ms:.1f} ms {sent} B']
    if stats.operation_type:
        words.append(f"{stats.operation_type} {stats.operation_name or '-'}")
    if stats.accounts or stats.upstream_calls:
        words.append(f"accounts={stats.accounts} upstream={stats.upstream_calls}")
    if stats.cache_hits or stats.cache_stale or stats.cache_misses:
        words.append(
            f"cache={stats.cache_hits} hit/{stats.cache_stale} stale/{stats.cache_misses} miss"
        )
    if stats.response_cache:
        words.append(f"response_cache={stats.response_cache}")
    if stats.outcome:
        words.append(stats.outcome + (f" ({stats.reason})" if stats.reason else ""))
    if stats.error_codes:
        words.append("errors=" + ",".join(stats.error_codes))
    write_access(" ".join(words), fields)


def _through_logging(message: str, fields: dict[str, Any]) -> None:
    access_log.info("%s", message, extra={"access": fields})


# How the access line reaches the log: through `logging`, until `log_format.configure`
# installs its direct writer (the same line, without a log record per request).
write_access: Callable[[str, dict[str, Any]], None] = _through_logging


def set_access_writer(writer: Callable[[str, dict[str, Any]], None] | None) -> None:
    """`writer` writes every access line from now on (None: through `logging` again)."""
    global write_access  # noqa: PLW0603 - the one writer of the process, set at configure
    write_access = writer or _through_logging
