"""One account's way to its provider: the shared HTTP client plus that account's own
bulkhead, circuit breaker, call quota and retry policy.

Every attempt, in order: inside the request deadline? breaker not open? quota left? a
bulkhead slot free (waiting no longer than the deadline)? Then one HTTP exchange, whose
outcome feeds the breaker and the metrics. Reads (idempotent calls) retry 5xx, 429,
timeouts and connection failures with full-jitter backoff, bounded attempts, all inside
the deadline, honouring `Retry-After`; when the wait it asks for does not fit, the 429 is
returned at once (the adapter reports UPSTREAM_RATE_LIMITED with `retryAfterSeconds`).
Non-idempotent calls (money) are attempted exactly once.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, NoReturn
from urllib.parse import urlsplit

from gateway.clock import Clock, remaining_seconds
from gateway.errors import (
    CircuitOpen,
    UpstreamBadResponse,
    UpstreamContext,
    UpstreamError,
    UpstreamRateLimited,
    UpstreamTimeout,
)
from gateway.observability import log_context, request_trace
from gateway.observability.metrics import Metrics
from gateway.observability.request_trace import Attempt
from gateway.observability.tracing import NO_TRACING, Tracing
from gateway.upstream.breaker import BreakerState, CircuitBreaker
from gateway.upstream.client import UpstreamClient, UpstreamResponse, parse_retry_after
from gateway.upstream.quota import Quota


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 3
    backoff_base_seconds: float = 0.1
    backoff_max_seconds: float = 2.0

    def backoff(self, attempt: int, rng: Callable[[], float]) -> float:
        """Full jitter: uniform in [0, min(max, base·2^attempt)]."""
        ceiling: float = min(self.backoff_max_seconds, self.backoff_base_seconds * 2**attempt)
        return rng() * ceiling


Sleep = Callable[[float], Awaitable[Any]]
Headers = Mapping[str, str] | Callable[[], Mapping[str, str]] | None


class Channel:
    def __init__(
        self,
        http: UpstreamClient,
        context: UpstreamContext,
        *,
        timeout_seconds: float,
        retry: RetryPolicy,
        breaker: CircuitBreaker,
        quota: Quota,
        max_concurrency: int,
        metrics: Metrics,
        clock: Clock = time.time,
        sleep: Sleep = asyncio.sleep,
        rng: Callable[[], float] = random.random,
        tracing: Tracing = NO_TRACING,
    ) -> None:
        self.http = http
        self.tracing = tracing
        self.context = context
        self.timeout_seconds = timeout_seconds
        self.retry = retry
        self.breaker = breaker
        self.quota = quota
        self._slots = asyncio.Semaphore(max_concurrency)
        self._metrics = metrics
        self._in_flight = metrics.upstream_in_flight.labels(context.account)
        self._breaker_state = metrics.breaker_state.labels(context.account)
        self._clock = clock
        self._sleep = sleep
        self._rng = rng

    def raise_for_status(self, response: UpstreamResponse) -> None:
        self.http.raise_for_status(self.context, response)

    async def send(
        self,
        method: str,
        url: str,
        *,
        headers: Headers = None,
        json_body: Any = None,
        content: bytes | None = None,
        idempotent: bool | None = None,
    ) -> UpstreamResponse:
        """The response of the last attempt (any status); transport failures raise.
        `headers` may be a function, called for every attempt (a signature with a
        single-use nonce must be made anew for each)."""
        idempotent = method in ("GET", "HEAD") if idempotent is None else idempotent
        attempts = self.retry.max_attempts if idempotent else 1
        wait = 0.0  # before this attempt
        for attempt in range(attempts):
            last = attempt + 1 >= attempts
            try:
                response = await self._attempt(
                    method, url, headers, json_body, content, attempt + 1, wait
                )
            except (CircuitOpen, UpstreamBadResponse, UpstreamRateLimited):
                raise  # not worth retrying within one request (the quota is our own)
            except UpstreamError:
                wait = self.retry.backoff(attempt, self._rng)
                if last or not self._fits(wait):
                    raise
                await self._sleep(wait)
                continue
            if last or (response.status < 500 and response.status != 429):
                return response
            wait = self._retry_wait(response, attempt)
            if not self._fits(wait):
                return response
            await self._sleep(wait)
        raise AssertionError("unreachable")

    def _retry_wait(self, response: UpstreamResponse, attempt: int) -> float:
        if response.status == 429:
            retry_after = parse_retry_after(response.headers.get("retry-after"), self._clock())
            if retry_after is not None:
                return float(retry_after)
        return self.retry.backoff(attempt, self._rng)

    @staticmethod
    def _fits(wait: float) -> bool:
        remaining = remaining_seconds()
        return remaining is None or wait < remaining - 0.05

    async def _attempt(
        self,
        method: str,
        url: str,
        headers: Headers,
        json_body: Any,
        content: bytes | None,
        number: int = 1,
        waited: float = 0.0,
    ) -> UpstreamResponse:
        with self._traced(method, url, number, waited) as noted:
            remaining = remaining_seconds()
            if remaining is not None and remaining <= 0:
                raise UpstreamTimeout(self.context, detail="request deadline reached").unsent()
            if self.breaker.state is BreakerState.OPEN:
                self._refuse_open()
            await self._take_quota()
            if not self.breaker.allow():
                self._refuse_open()
            timeout = (
                self.timeout_seconds if remaining is None else min(self.timeout_seconds, remaining)
            )
            started = time.monotonic()
            await self._acquire_slot(timeout)
            outcome = "error"  # until the exchange says otherwise: never "ok" by default
            self._in_flight.inc()
            log_context.stats().upstream_calls += 1
            where = urlsplit(url)
            span = self.tracing.upstream(
                method,
                where.hostname or "",
                where.path,
                self.context.provider,
                self.context.account,
                number,
                waited,
            )
            try:
                with span as traced:
                    sent = dict((headers() if callable(headers) else headers) or {})
                    self.tracing.inject(sent)  # W3C traceparent: this attempt is the parent
                    try:
                        response = await self.http.send(
                            self.context,
                            method,
                            url,
                            headers=sent,
                            json_body=json_body,
                            content=content,
                            timeout_seconds=timeout - (time.monotonic() - started),
                        )
                        outcome = outcome_of_status(response.status)
                        if noted is not None:  # a traced request's
                            noted.status, noted.outcome = response.status, outcome
                        traced.set_attribute("http.response.status_code", response.status)
                        return response
                    except UpstreamBadResponse:
                        outcome = "bad_response"
                        raise
                    except UpstreamTimeout:
                        outcome = "timeout"
                        raise
                    except UpstreamError:
                        outcome = "connection"
                        raise
                    finally:
                        traced.set_attribute("balance_gateway.outcome", outcome)
                        if outcome != "ok":
                            self.tracing.upstream_failed(traced, outcome)
            finally:
                self._slots.release()
                self._in_flight.dec()
                self._record(outcome, time.monotonic() - started)

    @contextlib.contextmanager
    def _traced(
        self, method: str, url: str, number: int, waited: float
    ) -> Iterator[Attempt | None]:
        """The attempt, for a traced request (`request_trace.py`: its method and path only,
        never a query string or header), with what refused it if it was not sent."""
        breaker = self.breaker.state.name.lower()
        traced = request_trace.attempt(f"{method} {urlsplit(url).path}", number, waited, breaker)
        if traced is None:
            yield None
            return
        traced.quota = "ok" if self.quota.limited else "none"
        started = time.monotonic()
        try:
            yield traced
        except UpstreamError as exc:
            traced.outcome = REFUSALS.get(type(exc), "connection")
            if isinstance(exc, UpstreamRateLimited):  # only the quota raises it here
                traced.quota = "spent"
            raise
        finally:
            traced.seconds = time.monotonic() - started

    async def _take_quota(self) -> None:
        if not self.quota.limited:
            return
        wait = await self.quota.take()
        if wait is None:
            self._metrics.budget_calls.labels(self.context.account, "taken").inc()
            return
        self._metrics.budget_calls.labels(self.context.account, "refused").inc()
        self._metrics.upstream_requests.labels(self.context.account, "budget").inc()
        raise UpstreamRateLimited(
            self.context, retry_after_seconds=wait, detail="the account's own call budget is spent"
        ).unsent()

    async def _acquire_slot(self, within: float) -> None:
        """A bulkhead slot, waiting no longer than `within` seconds (no timer if one is free)."""
        if not self._slots.locked():
            await self._slots.acquire()
            return
        try:
            async with asyncio.timeout(within):
                await self._slots.acquire()
        except TimeoutError:
            self.breaker.record_neutral()  # give back a probe's turn; the upstream is not at fault
            raise UpstreamTimeout(self.context, detail="no free connection slot").unsent() from None

    def _refuse_open(self) -> NoReturn:
        self._metrics.upstream_requests.labels(self.context.account, "circuit_open").inc()
        raise CircuitOpen(self.context, retry_after_seconds=self.breaker.retry_after()).unsent()

    def _record(self, outcome: str, seconds: float) -> None:
        if outcome in ("http_5xx", "timeout", "connection"):
            self.breaker.record_failure()
        elif outcome == "ok":
            self.breaker.record_success()
        else:
            self.breaker.record_neutral()
        account = self.context.account
        self._metrics.upstream_requests.labels(account, outcome).inc()
        self._metrics.upstream_latency.labels(account, outcome).observe(seconds)
        self._breaker_state.set(self.breaker.state.value)


# How an attempt that raised is told in a request's trace.
REFUSALS: dict[type[UpstreamError], str] = {
    CircuitOpen: "circuit_open",
    UpstreamRateLimited: "quota_spent",
    UpstreamTimeout: "timeout",
    UpstreamBadResponse: "bad_response",
}


def outcome_of_status(status: int) -> str:
    if 200 <= status < 300:
        return "ok"
    if status == 429:
        return "http_429"
    if status >= 500:
        return "http_5xx"
    return "http_4xx" if status >= 400 else "redirect"
