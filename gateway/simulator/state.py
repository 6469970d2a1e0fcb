"""Simulator state shared by every fake provider: clock, fault switches, call counters.

Fault switches are per tenant (one tenant = one provider account, found from its
credentials) and are named: `latency_seconds`, `status` (answer that HTTP status with the
provider's own error body), `retry_after` (with status 429), `malformed` (a truncated
body), `hang` (never answer), `documented_failure` (the failure body the provider documents
for that route, e.g. Muda's `{"status": 400, "message": "Failed to fetch balances"}`;
routes with none documented, such as Muda's token exchange, answer as usual). Tests set them
in-process (`state.set_faults`) or over HTTP (`PUT /_sim/faults/{tenant}`).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from gateway.simulator.books import Books

HANG_SECONDS = 3600.0


# Every switch with the JSON type it takes, as the control route's 400 answer lists them.
SWITCHES = {
    "latency_seconds": "number of seconds, 0 to 3600",
    "status": "integer HTTP status, 100 to 599",
    "retry_after": "string: the Retry-After header sent with it",
    "malformed": "boolean",
    "hang": "boolean",
    "documented_failure": "boolean",
}


class FaultError(ValueError):
    """A fault switch that is unknown or of the wrong type."""


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


CHECKS: dict[str, Callable[[Any], bool]] = {
    "latency_seconds": lambda v: _number(v) and 0 <= v <= HANG_SECONDS,
    "status": lambda v: isinstance(v, int) and not isinstance(v, bool) and 100 <= v <= 599,
    "retry_after": lambda v: isinstance(v, str),
    "malformed": lambda v: isinstance(v, bool),
    "hang": lambda v: isinstance(v, bool),
    "documented_failure": lambda v: isinstance(v, bool),
}


@dataclass(frozen=True)
class Faults:
    latency_seconds: float = 0.0
    status: int | None = None
    retry_after: str | None = None
    malformed: bool = False
    hang: bool = False
    documented_failure: bool = False

    @classmethod
    def from_json(cls, data: Any) -> Faults:
        """From a control request's JSON; a mistake raises `FaultError` naming it (a wrong
        type accepted here would break every later call to the tenant)."""
        if not isinstance(data, dict):
            raise FaultError("the body must be a JSON object of fault switches")
        unknown = sorted(set(data) - set(SWITCHES))
        if unknown:
            raise FaultError(f"unknown fault switches: {', '.join(unknown)}")
        wrong = sorted(k for k, v in data.items() if v is not None and not CHECKS[k](v))
        if wrong:
            raise FaultError(f"wrong type or range for: {', '.join(wrong)}")
        return cls(**{k: v for k, v in data.items() if v is not None})


class SimState:
    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.faults: dict[str, Faults] = {}
        self.calls: Counter[str] = Counter()
        self.books = Books()  # money moving over time, and statements that lie (books.py)

    def set_faults(self, tenant: str, **switches: Any) -> None:
        self.faults[tenant] = Faults(**switches)

    def clear_faults(self, tenant: str | None = None) -> None:
        if tenant is None:
            self.faults.clear()
        else:
            self.faults.pop(tenant, None)

    def count(self, tenant: str, route: str) -> None:
        self.calls[f"{tenant}:{route}"] += 1

    def calls_to(self, tenant: str, route: str) -> int:
        return self.calls[f"{tenant}:{route}"]

    def faults_as_json(self) -> dict[str, dict[str, Any]]:
        return {tenant: asdict(f) for tenant, f in self.faults.items()}


def dumps(value: Any) -> str:
    """JSON text with `Decimal` written as a raw JSON number (exactly its digits)."""
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(k)}: {dumps(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(dumps(v) for v in value) + "]"
    return json.dumps(value, ensure_ascii=False)


def utc_text(moment: datetime) -> str:
    """`2024-06-04T00:43:26.000000Z`: microseconds and a Z, as these APIs write instants."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def json_response(value: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(dumps(value), status, headers, media_type="application/json")


ErrorBody = Callable[[int, str], Any]
Handler = Callable[[], Awaitable[Response]]


async def with_faults(
    state: SimState,
    tenant: str,
    route: str,
    error_body: ErrorBody,
    handler: Handler,
    documented_failure: Response | None = None,
) -> Response:
    """Count the call, then apply the tenant's fault switches around `handler`.
    `documented_failure` is the route's failure answer as the provider documents it."""
    state.count(tenant, route)
    faults = state.faults.get(tenant, Faults())
    if faults.hang:
        await asyncio.sleep(HANG_SECONDS)
    if faults.latency_seconds:
        await asyncio.sleep(faults.latency_seconds)
    if faults.status is not None:
        headers = {"Retry-After": faults.retry_after} if faults.retry_after else None
        return json_response(error_body(faults.status, "Simulated failure"), faults.status, headers)
    if faults.documented_failure and documented_failure is not None:
        return documented_failure
    response = await handler()
    if faults.malformed:
        body = bytes(response.body)
        return Response(
            body[: max(1, len(body) // 2)], response.status_code, media_type="application/json"
        )
    return response


def bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None
