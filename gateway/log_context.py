"""Every log line carries the request id and client name, and no secret.

Three parts, each at the depth where it cannot break anything else:

- `RequestContext`, the outermost ASGI middleware, gives each HTTP request a fresh id (sent
  back as `X-Request-Id`) and clears the client name; the endpoint names the client once it
  is known. Both live in context variables, so every record made while serving the request
  (uvicorn's access line included: uvicorn writes it inside the app's `send`) sees them.
- The log-record factory only *adds* `request_id` and `client` to every record, whatever
  logger made it. It never rewrites a record's message or arguments: they belong to the
  formatter that renders them (uvicorn's own access formatter, for one, unpacks its five
  arguments).
- `Redacting` wraps the formatter of the one handler `configure()` installs and replaces
  every configured secret, and any `Authorization` / `Bearer` / `X-API-Key` value, in the
  *rendered text*: message with its arguments merged, traceback and stack alike. uvicorn is
  given no logging config of its own (`log_config=None`), so its loggers reach that handler.
"""

from __future__ import annotations

import logging
import re
import secrets as random_ids
import sys
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from contextvars import ContextVar
from typing import Any

request_id: ContextVar[str] = ContextVar("request_id", default="-")
client_name: ContextVar[str] = ContextVar("client_name", default="-")
# A server whose routine lines (access, start and stop) stay out of the log: the demo's
# embedded simulator, whose lines would drown the gateway's. Its warnings still show.
quiet: ContextVar[bool] = ContextVar("quiet", default=False)

BEARER = re.compile(
    r"(?i)((?:authorization|x-api-key)['\"]?\s*[:=]\s*['\"]?(?:bearer\s+)?|bearer\s+)"
    r"[^\s'\",]+"
)
FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s %(client)s] %(message)s"
# They log whole upstream URLs (and with them query strings) at INFO.
QUIET_LIBRARIES = ("httpx", "httpcore")

_secrets: set[str] = set()
_base_factory = logging.getLogRecordFactory()
_handler: logging.Handler | None = None


def redact(text: str) -> str:
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, "***")
    return BEARER.sub(lambda m: m.group(1) + "***", text)


def _factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
    record = _base_factory(*args, **kwargs)
    record.request_id = request_id.get()
    record.client = client_name.get()
    return record


class Redacting(logging.Formatter):
    """Renders with `inner`, then redacts the whole text (tracebacks and stacks included)."""

    def __init__(self, inner: logging.Formatter | None = None) -> None:
        super().__init__()
        self.inner = inner or logging.Formatter(FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        return redact(self.inner.format(record))


def install(secrets: Iterable[str]) -> None:
    """Redact these (and bearer values) from every line rendered from now on, and give
    every record made from now on the request id and client name."""
    _secrets.update(s for s in secrets if len(s) >= 6)
    logging.setLogRecordFactory(_factory)


def _not_quiet(record: logging.LogRecord) -> bool:
    return record.levelno >= logging.WARNING or not quiet.get()


def configure(level: str, stream: Any = None) -> None:
    """The process's one logging setup (every command of the CLI): one redacting handler on
    the root logger at `level` (a second call replaces it); uvicorn's loggers propagate to
    it, and routine lines made under `quiet` are dropped."""
    global _handler  # noqa: PLW0603 - one handler per process, replaced, never stacked
    install(())
    root = logging.getLogger()
    if _handler is not None:
        root.removeHandler(_handler)
    _handler = logging.StreamHandler(stream or sys.stderr)
    _handler.setFormatter(Redacting())
    root.addHandler(_handler)
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
        logger.setLevel(logging.NOTSET)
    for name in ("uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        if _not_quiet not in logger.filters:
            logger.addFilter(_not_quiet)
    for name in QUIET_LIBRARIES:
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))


Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def new_request_id() -> str:
    return random_ids.token_hex(8)


class RequestContext:
    """ASGI middleware: a request id per HTTP request, returned as `X-Request-Id`;
    `quiet=True` keeps this app's requests out of the access log."""

    def __init__(self, app: ASGIApp, *, quiet: bool = False) -> None:
        self.app = app
        self.quiet = quiet

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = new_request_id()
        request_id.set(rid)
        client_name.set("-")
        quiet.set(self.quiet)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [*message.get("headers", ()), (b"x-request-id", rid.encode())]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_id)
