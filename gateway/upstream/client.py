"""The one place that talks HTTP to providers.

One httpx transport per process (httpx-aiohttp's by default; tests inject
`httpx.ASGITransport` to reach the simulator in-process), driven directly with
`httpx.Request`s: this module is the client. httpx's `AsyncClient` would add redirects, a
cookie jar, auth flows and default headers, none of which a provider call may use, for
about 0.15 ms of CPU a call. Every call gets connect/read timeouts plus a hard per-attempt
deadline (so an injected transport that hangs is bounded too); a redirect is an answer,
never followed; no cookie is kept or sent; the body is read in chunks up to a cap.
Transport failures and HTTP statuses become typed `UpstreamError`s here, so adapters only
parse.
"""

from __future__ import annotations

import asyncio
import email.utils
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC
from functools import lru_cache
from typing import Any

import aiohttp
import httpx

from gateway import bodies
from gateway._compat.httpx_aiohttp import aiohttp_cause
from gateway.clock import Clock, whole_seconds
from gateway.errors import (
    UpstreamBadResponse,
    UpstreamContext,
    UpstreamError,
    UpstreamRateLimited,
    UpstreamRejected,
    UpstreamTimeout,
    UpstreamUnauthorized,
    UpstreamUnavailable,
)

DEFAULT_MAX_BODY_BYTES = 1024 * 1024
# An answer that broke HTTP itself — a bad status line, header or chunk size, a body shorter
# than its Content-Length followed by garbage, a Content-Encoding that does not decode —
# is a bad response, not a lost connection. (httpx-aiohttp passes aiohttp's parser errors
# through as `ClientResponseError`; it wraps a body cut short as `httpx.ReadError`.)
MALFORMED = (
    httpx.DecodingError,
    aiohttp.ClientResponseError,
    aiohttp.http_exceptions.HttpProcessingError,
)
USER_AGENT = "balance-gateway"


@dataclass(frozen=True)
class UpstreamResponse:
    status: int
    headers: Mapping[str, str]
    body: bytes


def default_transport() -> httpx.AsyncBaseTransport:
    from httpx_aiohttp import AiohttpTransport

    return AiohttpTransport()


class UpstreamClient:
    def __init__(
        self,
        transport: httpx.AsyncBaseTransport | None = None,
        *,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        wall_clock: Clock = time.time,
    ) -> None:
        self._transport = transport or default_transport()
        self.max_body_bytes = max_body_bytes
        self._wall_clock = wall_clock

    async def aclose(self) -> None:
        await self._transport.aclose()

    async def send(
        self,
        context: UpstreamContext,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        json_body: Any = None,
        content: bytes | None = None,
        timeout_seconds: float,
    ) -> UpstreamResponse:
        """Send once and return the raw response, whatever its status; transport failures raise."""
        request = httpx.Request(
            method,
            _parsed(url),
            headers={"user-agent": USER_AGENT, **(headers or {})},
            json=json_body,
            content=content,
            extensions={"timeout": _timeouts(timeout_seconds)},
        )
        try:
            async with asyncio.timeout(timeout_seconds):
                response = await self._transport.handle_async_request(request)
                try:
                    body = await self._read_capped(context, response)
                finally:
                    await response.aclose()
        except UpstreamError:
            raise
        except TimeoutError as exc:
            raise UpstreamTimeout(context, detail="deadline exceeded") from exc
        except httpx.TransportError as exc:
            raise transport_error(context, exc) from exc
        except MALFORMED as exc:
            raise UpstreamBadResponse(
                context, detail=f"malformed HTTP ({type(exc).__name__})"
            ) from exc
        except Exception as exc:
            # Not `unsent()`: the request may have been written, so a top-up stays pending.
            raise UpstreamUnavailable(
                context, detail=f"transport failed ({type(exc).__name__})"
            ) from exc
        return UpstreamResponse(response.status_code, response.headers, body)

    def raise_for_status(self, context: UpstreamContext, response: UpstreamResponse) -> None:
        """Raise the typed error for any non-2xx HTTP status."""
        if not 200 <= response.status < 300:
            retry_after = parse_retry_after(response.headers.get("retry-after"), self._wall_clock())
            raise status_error(context, response.status, retry_after)

    async def _read_capped(self, context: UpstreamContext, response: httpx.Response) -> bytes:
        declared = response.headers.get("content-length")
        try:
            return await bodies.read_capped(response.aiter_bytes(), self.max_body_bytes, declared)
        except bodies.TooLarge:
            raise UpstreamBadResponse(context, detail="body over the size cap") from None


@lru_cache(maxsize=1024)
def _parsed(url: str) -> httpx.URL:
    """Provider URLs repeat (base URL + a few paths): parse each once."""
    return httpx.URL(url)


def _timeouts(seconds: float) -> dict[str, float]:
    """httpx's timeout extension, every phase `seconds` (what `httpx.Timeout(seconds)`
    means; built directly: the remaining deadline differs on every call)."""
    return {"connect": seconds, "read": seconds, "write": seconds, "pool": seconds}


def status_error(
    context: UpstreamContext, status: int, retry_after_seconds: int | None = None
) -> UpstreamError:
    """Map a failing status (HTTP, or an envelope's own) to its typed error."""
    ctx = UpstreamContext(context.provider, context.account, status, context.upstream_code)
    if status in (401, 403):
        return UpstreamUnauthorized(ctx)
    if status == 429:
        return UpstreamRateLimited(ctx, retry_after_seconds=retry_after_seconds)
    if 300 <= status < 400:
        return UpstreamBadResponse(ctx, detail="redirect refused")
    if status >= 500:
        return UpstreamUnavailable(ctx)
    if 400 <= status < 500:
        return UpstreamRejected(ctx)
    return UpstreamBadResponse(ctx, detail=f"unexpected status {status}")


def transport_error(context: UpstreamContext, exc: httpx.TransportError) -> UpstreamError:
    """Classify by the underlying cause: httpx-aiohttp reports a refused connection and a
    reset after the request was written as `httpx.ConnectTimeout`, so its class alone lies."""
    cause = aiohttp_cause(exc)
    if isinstance(cause, asyncio.TimeoutError) or (
        cause is None and isinstance(exc, httpx.TimeoutException)
    ):
        return UpstreamTimeout(context, detail=type(exc).__name__)
    if isinstance(cause, aiohttp.ClientConnectorError) or isinstance(exc, httpx.ConnectError):
        return UpstreamUnavailable(context, detail="connection failed").unsent()
    return UpstreamUnavailable(context, detail=f"connection lost ({type(cause or exc).__name__})")


def parse_retry_after(value: str | None, now: float) -> int | None:
    """`Retry-After` in seconds or as an HTTP-date → whole seconds from now (≥ 0)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return int(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return whole_seconds(when.timestamp() - now)
