"""How log lines are written: text or JSON, every field redacted.

`configure(level, format, levels)` is the process's one logging setup (every CLI command
calls it): one handler on the root logger, at `level`, with finer levels per logger. uvicorn
is given no logging config of its own (`log_config=None`), so its loggers reach that handler
too; its access log is off, because the gateway writes its own (`log_context`).

- `text`: `2026-11-26T09:41:00.123Z INFO gateway.access [<request id> <client>] message`.
- `json`: one object per line — `time` (UTC, ISO-8601), `level`, `logger`, `message`,
  `request_id`, `client`, `pid`, the access line's fields, and an exception as one
  `exception` string (never several lines).

Redaction happens on what is written: every configured secret, and any `Authorization` /
`Bearer` / `X-API-Key` value, is replaced in the rendered text — message with its
arguments merged, traceback and stack — and in every JSON field.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import orjson

from gateway.observability import log_context

BEARER = re.compile(
    r"(?i)((?:authorization|x-api-key)['\"]?\s*[:=]\s*['\"]?(?:bearer\s+)?|bearer\s+)"
    r"[^\s'\",]+"
)
BEARER_WORDS = ("bearer", "authorization", "x-api-key")
TEXT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s %(client)s] %(message)s"
# Libraries held to warnings unless `[logging] levels` says otherwise: httpx and httpcore
# log whole upstream URLs (and with them query strings) at INFO; the MCP SDK (`mcp`, its
# server under `mcp.server.*`) two or three lines per `/mcp` request beside the access line.
QUIET_LIBRARIES = ("httpx", "httpcore", "mcp")
ACCESS = log_context.access_log.name

_secrets: set[str] = set()
_handler: logging.Handler | None = None
_finer: list[str] = []  # loggers given their own level by the last `configure`


def redact(text: str) -> str:
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, "***")
    # BEARER needs one of its words; most lines have none. (Only ASCII is checked this
    # way: ignoring case, the pattern also matches letters such as "ı" that lower() keeps.)
    lowered = text.lower()
    if not text.isascii() or any(word in lowered for word in BEARER_WORDS):
        return BEARER.sub(lambda m: m.group(1) + "***", text)
    return text


def add_secrets(secrets: Iterable[str]) -> None:
    """Redact these from every line written from now on (values under 6 characters would
    redact ordinary words, so they are not taken)."""
    _secrets.update(s for s in secrets if len(s) >= 6)


_second: tuple[int, str] = (-1, "")  # the last second formatted, and its text


def utc_time(created: float) -> str:
    """`2026-11-26T09:41:00.123Z`; the text up to the second is formatted once a second."""
    global _second  # noqa: PLW0603 - a one-entry cache: every line of a second shares it
    second = int(created)
    if _second[0] != second:
        moment = datetime.fromtimestamp(second, UTC)
        _second = (second, moment.strftime("%Y-%m-%dT%H:%M:%S."))
    return f"{_second[1]}{int((created - second) * 1000):03d}Z"


class TextFormatter(logging.Formatter):
    """One line in `TEXT`'s shape (a traceback follows on its own lines), redacted."""

    def __init__(self) -> None:
        super().__init__(TEXT)

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return utc_time(record.created)

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


def _entry(
    created: float, level: str, logger: str, message: str, rid: str, client: str
) -> dict[str, Any]:
    return {
        "time": utc_time(created),
        "level": level,
        "logger": logger,
        "message": message,
        "request_id": rid,
        "client": client,
        "pid": os.getpid(),
    }


def _redacted_json(entry: dict[str, Any]) -> str:
    clean = {k: redact(v) if isinstance(v, str) else v for k, v in entry.items()}
    return orjson.dumps(clean, default=str).decode()


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line, every string redacted."""

    def format(self, record: logging.LogRecord) -> str:
        entry = _entry(
            record.created,
            record.levelname.lower(),
            record.name,
            record.getMessage(),
            getattr(record, "request_id", "-"),
            getattr(record, "client", "-"),
        )
        for name in ("access", "fields"):  # the access line's; an event's own (`fields=`)
            extra = getattr(record, name, None)
            if isinstance(extra, dict):
                entry.update(extra)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return _redacted_json(entry)


def _access_line(message: str, fields: dict[str, Any], json: bool) -> str:
    """The access line as its formatter renders the record `log_context` would make."""
    created = time.time()
    rid, client = log_context.request_id.get(), log_context.client_name.get()
    if json:
        entry = _entry(created, "info", ACCESS, message, rid, client)
        entry.update(fields)
        return _redacted_json(entry)
    return redact(f"{utc_time(created)} INFO {ACCESS} [{rid} {client}] {message}")


def _direct_writer(handler: logging.StreamHandler[Any], json: bool) -> Any:
    """The access line written to `handler`'s stream as `logging` would write it — same
    text, same redaction — without a log record, its factory and its handlers' walk (a
    sixth of a cached answer's time). Only while that handler is the only one anything
    reaches and nothing filters or silences the access logger; else through `logging`."""
    root, access = logging.getLogger(), log_context.access_log
    between: list[logging.Logger] = []  # the access logger and its parents below the root
    logger: logging.Logger | None = access
    while isinstance(logger, logging.Logger) and logger is not root:
        between.append(logger)
        logger = logger.parent

    def write(message: str, fields: dict[str, Any]) -> None:
        if (  # (the root logger's own filters see only records made on it, never these)
            root.handlers != [handler]
            or handler.filters
            or handler.level > logging.INFO
            or not access.isEnabledFor(logging.INFO)
            or any(x.handlers or x.filters or not x.propagate for x in between)
        ):
            access.info("%s", message, extra={"access": fields})
            return
        line = _access_line(message, fields, json) + handler.terminator
        handler.acquire()
        try:
            handler.stream.write(line)
            handler.flush()
        except Exception:  # as logging does: its own complaint on stderr, never the request's
            access.info("%s", message, extra={"access": fields})
        finally:
            handler.release()

    return write


def _not_quiet(record: logging.LogRecord) -> bool:
    return record.levelno >= logging.WARNING or not log_context.quiet.get()


def configure(
    level: str = "info",
    format: str = "text",
    levels: Iterable[tuple[str, str]] = (),
    stream: Any = None,
) -> None:
    """The process's one logging setup; a second call replaces the first (`serve` calls it
    again once the configuration's `[logging]` is read)."""
    global _handler  # noqa: PLW0603 - one handler per process, replaced, never stacked
    log_context.install_record_factory()
    # No line shows the thread, process name or the caller's file and line: the stdlib's
    # documented switches stop logging from looking them up on every record.
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    logging._srcfile = None  # the "Optimization" section of the logging docs
    root = logging.getLogger()
    if _handler is not None:
        root.removeHandler(_handler)
    _handler = logging.StreamHandler(stream or sys.stderr)
    _handler.setFormatter(JsonFormatter() if format == "json" else TextFormatter())
    root.addHandler(_handler)
    log_context.set_access_writer(_direct_writer(_handler, format == "json"))
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
        logger.setLevel(logging.NOTSET)
    error = logging.getLogger("uvicorn.error")  # start and stop lines of a quiet server
    if _not_quiet not in error.filters:
        error.addFilter(_not_quiet)
    while _finer:  # the last call's own levels undone first: a quiet library stays quiet
        logging.getLogger(_finer.pop()).setLevel(logging.NOTSET)
    for name in QUIET_LIBRARIES:
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))
    for name, finer in levels:
        logging.getLogger(name).setLevel(finer.upper())
        _finer.append(name)
