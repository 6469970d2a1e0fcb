"""How a request ended, as the metrics and the access line name it, and the answer a
refusal gets: its HTTP status and the GraphQL error shape (`refusal`); `until_disconnected`
runs the work unless the client leaves first (499, to nobody: `cancelled`)."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import Receive

from gateway._compat.asyncio import started
from gateway.errors import ErrorCode, GatewayError
from gateway.observability import log_context
from gateway.server.refused import Refused

STATUS = {
    ErrorCode.UNAUTHENTICATED: 401,
    ErrorCode.FORBIDDEN: 403,
    ErrorCode.RATE_LIMITED: 429,
    ErrorCode.OVERLOADED: 503,
}


GONE = log_context.CLIENT_CLOSED  # 499: only the access log ever sees it


async def until_disconnected(
    request: Request, work: Coroutine[Any, Any, Response], cancellable: bool
) -> Response:
    """`work`'s response — unless the client disconnects first: then `cancellable` work is
    cancelled (no CPU or upstream calls for nobody), other work (a mutation) still runs to
    its end, and either way the answer is 499, to nobody."""
    task = started(work)  # its upstream calls leave before the requests queued behind it
    watch = asyncio.ensure_future(disconnected(request.receive))
    try:
        await asyncio.wait((task, watch), return_when=asyncio.FIRST_COMPLETED)
        left = watch.done() and not cancellable  # cancellable: `task` is cancelled below
        if not cancellable:
            await asyncio.wait((task,))
    finally:
        watch.cancel()
        if not task.done():
            task.cancel()
            await asyncio.wait((task,))  # let it unwind before anything else runs
    if task.cancelled():
        return Response(status_code=GONE)
    response = task.result()
    return Response(status_code=GONE) if left else response


async def while_connected(request: Request, waiting: Coroutine[Any, Any, None]) -> bool:
    """Waits for `waiting` (its exceptions raised here); False, and it is cancelled, if
    the client disconnects first — a place in a queue given up by a client who left."""
    task = asyncio.ensure_future(waiting)
    watch = asyncio.ensure_future(disconnected(request.receive))
    try:
        await asyncio.wait((task, watch), return_when=asyncio.FIRST_COMPLETED)
    finally:
        watch.cancel()
        if not task.done():
            task.cancel()
            await asyncio.wait((task,))
    if task.cancelled():
        return False
    task.result()
    return True


async def disconnected(receive: Receive) -> None:
    """Returns when the client disconnects (the body has been read by then)."""
    while (await receive())["type"] != "http.disconnect":
        pass


# Why a request was refused before GraphQL ran, by its HTTP status (a metric label).
REFUSED = {
    400: "bad_request",
    401: "unauthenticated",
    403: "forbidden",
    405: "method_not_allowed",
    408: "timeout",
    413: "too_large",
    406: "not_acceptable",
    415: "unsupported_media_type",
    429: "rate_limited",
    503: "overloaded",
}


def classify(status: int, stats: log_context.RequestStats) -> None:
    """The request's outcome: refused (and why), cancelled, internal, client_error (any
    other GraphQL error), partial (provider failures in place) or ok."""
    if stats.outcome is not None:
        return
    if status == GONE:
        stats.outcome = "cancelled"
    elif status != 200:
        stats.outcome, stats.reason = "refused", REFUSED.get(status, str(status))
    elif ErrorCode.INTERNAL.value in stats.error_codes:
        stats.outcome = "internal"
    elif stats.error_codes:
        stats.outcome = "client_error"
    elif stats.failures:
        stats.outcome = "partial"
    else:
        stats.outcome = "ok"


def refusal(exc: GatewayError) -> Response:
    status = exc.status if isinstance(exc, Refused) else STATUS.get(exc.code, 400)
    if status == GONE:  # no one is there to read a body
        return Response(status_code=GONE)
    headers = {"Retry-After": str(exc.retry_after_seconds)} if exc.retry_after_seconds else {}
    if isinstance(exc, Refused):
        headers.update(exc.headers)
    body = {"errors": [{"message": exc.message, "extensions": {"code": exc.code.value}}]}
    return JSONResponse(body, status, headers)
