"""One error tree for the whole gateway; every error carries a stable code.

    GatewayError (code, message, retryable, retry_after_seconds)
    ├── ClientError                  the caller's fault: VALIDATION, NOT_FOUND, UNSUPPORTED
    │   ├── Unauthenticated          no or bad credentials (always the same answer)
    │   ├── Forbidden                a scope the caller lacks
    │   └── RateLimited              the caller's own request rate
    ├── Overloaded                   the gateway sheds this request (HTTP 503, Retry-After)
    ├── ConfigError                  the configuration is unusable (a list of problems)
    └── UpstreamError                a provider failed (provider, account, upstream status/code)
        ├── UpstreamUnauthorized     401/403 (never served stale, drops cached data)
        ├── UpstreamRateLimited      429 or our own budget (retry_after_seconds)
        ├── UpstreamUnavailable      5xx, connection refused, provider says "try later"
        ├── UpstreamTimeout          connect/read timeout or the request deadline
        ├── UpstreamBadResponse      body does not parse, wrong types, too large, redirect
        ├── UpstreamRejected         a definite 4xx refusal of this request
        └── CircuitOpen              the account's breaker is open: not even tried

Messages are safe to show to clients: they never contain secrets, upstream URLs or
upstream bodies. Details meant for operators go to `detail`, which is logged, not returned.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class ErrorCode(Enum):
    """Stable codes shared by the schema, this module and `extensions.code`. Never rename."""

    UNAUTHENTICATED = "UNAUTHENTICATED"
    FORBIDDEN = "FORBIDDEN"
    NOT_FOUND = "NOT_FOUND"
    VALIDATION = "VALIDATION"
    RATE_LIMITED = "RATE_LIMITED"
    INTERNAL = "INTERNAL"
    UPSTREAM_UNAUTHORIZED = "UPSTREAM_UNAUTHORIZED"
    UPSTREAM_RATE_LIMITED = "UPSTREAM_RATE_LIMITED"
    UPSTREAM_UNAVAILABLE = "UPSTREAM_UNAVAILABLE"
    UPSTREAM_TIMEOUT = "UPSTREAM_TIMEOUT"
    UPSTREAM_BAD_RESPONSE = "UPSTREAM_BAD_RESPONSE"
    UPSTREAM_REJECTED = "UPSTREAM_REJECTED"
    CIRCUIT_OPEN = "CIRCUIT_OPEN"
    IDEMPOTENCY_KEY_REUSED = "IDEMPOTENCY_KEY_REUSED"
    UNSUPPORTED = "UNSUPPORTED"
    OVERLOADED = "OVERLOADED"
    DOCUMENT_NOT_FOUND = "DOCUMENT_NOT_FOUND"  # a document id the manifest does not hold
    # an automatic persisted query's hash not (or no longer) known: send it with its query
    PERSISTED_QUERY_NOT_FOUND = "PERSISTED_QUERY_NOT_FOUND"
    DOCUMENT_NOT_TRUSTED = "DOCUMENT_NOT_TRUSTED"  # a document sent where only ids may run


class GatewayError(Exception):
    code: ErrorCode = ErrorCode.INTERNAL
    retryable: bool = False

    def __init__(
        self,
        message: str,
        *,
        detail: str | None = None,
        retry_after_seconds: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail
        self.retry_after_seconds = retry_after_seconds

    def with_code(self, code: ErrorCode) -> GatewayError:
        self.code = code
        return self


class ClientError(GatewayError):
    code = ErrorCode.VALIDATION


class Overloaded(GatewayError):
    """More requests than the gateway can answer in time: refused at once, not queued."""

    code = ErrorCode.OVERLOADED
    retryable = True


class Unauthenticated(ClientError):
    code = ErrorCode.UNAUTHENTICATED


class Forbidden(ClientError):
    code = ErrorCode.FORBIDDEN


class RateLimited(ClientError):
    code = ErrorCode.RATE_LIMITED
    retryable = True


class NotFound(ClientError):
    code = ErrorCode.NOT_FOUND


class Unsupported(ClientError):
    code = ErrorCode.UNSUPPORTED


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the configuration: where, what, and how to fix it."""

    location: str
    message: str
    fix: str = ""

    def __str__(self) -> str:
        text = f"{self.location}: {self.message}"
        return f"{text} (fix: {self.fix})" if self.fix else text


class ConfigError(GatewayError):
    code = ErrorCode.INTERNAL

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("invalid configuration:\n" + "\n".join(f"  - {p}" for p in problems))


@dataclass(frozen=True)
class UpstreamContext:
    """What an upstream error knows about where it came from (operators only)."""

    provider: str
    account: str
    status: int | None = None
    upstream_code: str | None = None


class UpstreamError(GatewayError):
    code = ErrorCode.UPSTREAM_UNAVAILABLE
    retryable = True
    default_message = "The provider is unavailable."
    # True only when the request provably never left the gateway (no connection was made,
    # the circuit or the budget refused it): only then may money be sent again.
    not_sent = False

    def unsent(self) -> UpstreamError:
        self.not_sent = True
        return self

    def __init__(
        self,
        context: UpstreamContext,
        message: str | None = None,
        *,
        detail: str | None = None,
        retry_after_seconds: int | None = None,
    ) -> None:
        super().__init__(
            message or self.default_message,
            detail=detail,
            retry_after_seconds=retry_after_seconds,
        )
        self.context = context


class UpstreamUnauthorized(UpstreamError):
    code = ErrorCode.UPSTREAM_UNAUTHORIZED
    retryable = False
    default_message = "The provider refused the gateway's credentials."


class UpstreamRateLimited(UpstreamError):
    code = ErrorCode.UPSTREAM_RATE_LIMITED
    default_message = "The provider's rate limit was reached."


class UpstreamUnavailable(UpstreamError):
    code = ErrorCode.UPSTREAM_UNAVAILABLE


class UpstreamTimeout(UpstreamError):
    code = ErrorCode.UPSTREAM_TIMEOUT
    default_message = "The provider did not answer in time."


class UpstreamBadResponse(UpstreamError):
    code = ErrorCode.UPSTREAM_BAD_RESPONSE
    default_message = "The provider sent a response the gateway cannot read."


class UpstreamRejected(UpstreamError):
    code = ErrorCode.UPSTREAM_REJECTED
    retryable = False
    default_message = "The provider rejected the request."


class CircuitOpen(UpstreamError):
    code = ErrorCode.CIRCUIT_OPEN
    default_message = "The provider is failing; the gateway is not calling it for now."
