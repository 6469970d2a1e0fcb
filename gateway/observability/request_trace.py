"""A trace of one request, for a caller allowed to see it (the `debug` scope and the request
header `X-Gateway-Trace: 1`): per account read, the cache's state — `fresh`, `stale`,
`miss`, or `joined` another read (this process's, or another replica's) — each upstream
attempt it made (the request line without its query, the status or what refused it, how
long it took, the retry wait before it, the breaker's state and the quota's answer), and
the time spent in the gateway around them, in whole microseconds. Answered as
`extensions.trace`.

Nothing here holds a secret: no header, no query string, no host's credentials — only a
method and a path. The layers record into the request's trace through context variables
(a no-op when the request is not traced), so no signature changes for it; each account's
read runs in its own task, so each records into its own entry.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

TRACE_HEADER = "x-gateway-trace"
TRACE_SCOPE = "debug"


@dataclass
class Attempt:
    request: str  # "GET /api/v1/balance": never a query string, never a header
    number: int
    retry_wait_seconds: float  # waited before this attempt
    breaker: str  # the breaker's state as the attempt began: closed, open, half_open
    quota: str = "ok"  # ok, spent (the account's own call quota refused it), none (no quota)
    status: int | None = None  # the upstream's HTTP status; None: none came back
    outcome: str = "error"  # ok, http_4xx, http_5xx, http_429, timeout, connection, …
    seconds: float = 0.0

    def as_json(self) -> dict[str, Any]:
        return {
            "request": self.request,
            "attempt": self.number,
            "status": self.status,
            "outcome": self.outcome,
            "durationUs": _us(self.seconds),
            "retryWaitUs": _us(self.retry_wait_seconds),
            "breaker": self.breaker,
            "quota": self.quota,
        }


@dataclass
class AccountTrace:
    account: str
    started: float = field(default_factory=time.monotonic)
    ended: float | None = None
    cache: str = "miss"
    attempts: list[Attempt] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        total = (self.ended or time.monotonic()) - self.started
        upstream = sum(a.seconds + a.retry_wait_seconds for a in self.attempts)
        return {
            "account": self.account,
            "cache": self.cache,
            "upstream": [a.as_json() for a in self.attempts],
            "durationUs": _us(total),
            "gatewayUs": _us(max(0.0, total - upstream)),
        }


@dataclass
class RequestTrace:
    started: float = field(default_factory=time.monotonic)
    accounts: list[AccountTrace] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "durationUs": _us(time.monotonic() - self.started),
            "accounts": [a.as_json() for a in self.accounts],
        }


_REQUEST: ContextVar[RequestTrace | None] = ContextVar("request_trace", default=None)
_ACCOUNT: ContextVar[AccountTrace | None] = ContextVar("account_trace", default=None)


def wanted(headers: Any, scopes: frozenset[str]) -> bool:
    """Whether this request is traced: it asks (the header) and may (the scope)."""
    return headers.get(TRACE_HEADER, "").strip() in ("1", "true") and TRACE_SCOPE in scopes


@contextlib.contextmanager
def tracing(trace: RequestTrace | None) -> Iterator[None]:
    """The block's work is recorded in `trace` (None: not traced)."""
    token = _REQUEST.set(trace)
    try:
        yield
    finally:
        _REQUEST.reset(token)


def account_read(account: str) -> AccountTrace | None:
    """Start recording an account's read, in the current task (its own context)."""
    request = _REQUEST.get()
    if request is None:
        return None
    entry = AccountTrace(account)
    request.accounts.append(entry)
    _ACCOUNT.set(entry)
    return entry


@contextlib.contextmanager
def source_read(name: str) -> Iterator[None]:
    """Record the block as a read of its own, named `name` (the rates provider's), within
    whatever else this task records."""
    request = _REQUEST.get()
    if request is None:
        yield
        return
    entry = AccountTrace(name)
    request.accounts.append(entry)
    token = _ACCOUNT.set(entry)
    try:
        yield
    finally:
        entry.ended = time.monotonic()
        _ACCOUNT.reset(token)


def cache_state(state: str) -> None:
    """How the cache answered the account's read: fresh, stale, miss or joined."""
    entry = _ACCOUNT.get()
    if entry is not None:
        entry.cache = state


def attempt(request: str, number: int, waited: float, breaker: str) -> Attempt | None:
    """An upstream attempt of the account's read, begun now (fill it in as it goes)."""
    entry = _ACCOUNT.get()
    if entry is None:
        return None
    started = Attempt(request, number, waited, breaker)
    entry.attempts.append(started)
    return started


def _us(seconds: float) -> int:
    """Whole microseconds: a trace has no JSON float (as no answer of the gateway has)."""
    return round(seconds * 1_000_000)
