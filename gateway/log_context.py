"""Every log record carries the request id and client name, and no secret.

Installed once per process as the log-record factory, so it covers every logger and every
handler (httpx, httpcore, uvicorn, ours, and test capture alike): the message, with its
arguments merged in, and any traceback are rewritten with each configured secret, and any
`Authorization`/`Bearer` value, replaced by `***`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from contextvars import ContextVar
from typing import Any

request_id: ContextVar[str] = ContextVar("request_id", default="-")
client_name: ContextVar[str] = ContextVar("client_name", default="-")

BEARER = re.compile(
    r"(?i)((?:authorization|x-api-key)['\"]?\s*[:=]\s*['\"]?(?:bearer\s+)?|bearer\s+)"
    r"[^\s'\",]+"
)
FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s %(client)s] %(message)s"

_secrets: set[str] = set()
_base_factory = logging.getLogRecordFactory()


def redact(text: str) -> str:
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, "***")
    return BEARER.sub(lambda m: m.group(1) + "***", text)


def _factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
    record = _base_factory(*args, **kwargs)
    record.request_id = request_id.get()
    record.client = client_name.get()
    try:
        message = record.getMessage()
    except (TypeError, ValueError):
        message = str(record.msg)
    record.msg, record.args = redact(message), None
    if record.exc_info and record.exc_info[0] is not None:
        record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        record.exc_info = None
    return record


def install(secrets: Iterable[str]) -> None:
    """Redact these (and bearer values) from every log record made from now on."""
    _secrets.update(s for s in secrets if len(s) >= 6)
    logging.setLogRecordFactory(_factory)
