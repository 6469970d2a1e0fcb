"""A request turned away before GraphQL runs, with its own HTTP status and stable code."""

from __future__ import annotations

from gateway.errors import ErrorCode, GatewayError


class Refused(GatewayError):
    """A request turned away before GraphQL: its own HTTP status and code."""

    def __init__(
        self,
        status: int,
        message: str,
        code: ErrorCode = ErrorCode.VALIDATION,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.headers = headers or {}
