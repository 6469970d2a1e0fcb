"""Fake Our Voice (from provider-docs/ourvoice.txt): static Bearer key, nested envelope.

`GET /v1/current/balance` → `{"data": {"success": true, "message": …, "data": <inner>}}`
with `<inner>` a JSON-encoded string or an object, per tenant. Errors are Laravel-style
`{"message": …}`. Each tenant's credit is kept in `balances` (a ledger tests may change).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.simulator.books import DAY, Movement
from gateway.simulator.fake import FakeSpec
from gateway.simulator.state import (
    HANG_SECONDS,
    SimState,
    bearer,
    dumps,
    json_response,
    with_faults,
)


@dataclass(frozen=True)
class OurVoiceTenant:
    name: str
    api_key: str
    balance: Decimal
    inner_as_string: bool


OURVOICE = (
    OurVoiceTenant("ourvoice-sn", "demo-ourvoice-sn-key", Decimal("50000"), inner_as_string=True),
    OurVoiceTenant("ourvoice-ci", "demo-ourvoice-ci-key", Decimal("125750"), inner_as_string=False),
)


def error_body(status: int, message: str) -> dict[str, object]:
    return {"message": message}


def envelope(tenant: OurVoiceTenant, inner: dict[str, object]) -> dict[str, object]:
    return {
        "data": {
            "success": True,
            "message": "Operation successfully executed",
            "data": dumps(inner) if tenant.inner_as_string else inner,
        }
    }


TOPUP_FAULTS = (
    "commit-then-hang",
    "commit-then-reset",
    "accept-then-reset",
    "503-before-commit",
    "503-after-commit",
    "never-posts",  # answers success; the credit never arrives
    "posts-next-day",  # answers success; the credit arrives a day later
)


class SimulatedReset(Exception):
    """Raised by the fake to drop the connection; a test transport turns it into the
    client-side error a real reset gives (`httpx.ReadError`)."""


class OurVoiceFake:
    """Balances and a ledger of top-ups per tenant; `topup_faults[tenant]` names a fault
    mode of `TOPUP_FAULTS` for the next top-ups (`topup_modes`: the control route lists
    them)."""

    topup_modes = TOPUP_FAULTS

    def __init__(self, state: SimState, tenants: tuple[OurVoiceTenant, ...] = OURVOICE) -> None:
        self.state = state
        self.by_key = {t.api_key: t for t in tenants}
        self.balances: dict[str, Decimal] = {t.name: t.balance for t in tenants}
        self.credits: dict[str, list[dict[str, object]]] = {t.name: [] for t in tenants}
        self.topup_faults: dict[str, str] = {}

    def _commit(
        self, tenant: OurVoiceTenant, body: dict[str, object], fault: str | None = None
    ) -> dict[str, object]:
        amount = body["amount"]
        assert isinstance(amount, Decimal)
        moment = datetime.fromtimestamp(self.state.clock(), UTC)
        transaction = {
            "id": str(uuid.uuid4()),
            "description": "account top up",
            "payment_method": body["payment_method"],
            "payment_id": body["payment_id"],
            "amount": amount,
            "currency": "XOF",
            "status": body["status"],
            "created_at": moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "updated_at": moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        }
        if fault == "posts-next-day":
            credit = Movement(str(transaction["id"]), "credit", "top_up", True, amount, 0.0)
            at = self.state.clock() + DAY
            self.state.books.post(tenant.name, dataclasses.replace(credit, at=at, listed=False))
        elif fault != "never-posts":
            self.balances[tenant.name] += amount
        self.credits[tenant.name].append(transaction)
        return transaction

    async def top_up(self, request: Request) -> Response:
        tenant = self.by_key.get(bearer(request) or "")
        if tenant is None:
            self.state.count("anonymous", "topup")
            return json_response(error_body(401, "Unauthenticated."), 401)
        try:
            body = json.loads(await request.body(), parse_float=Decimal, parse_int=Decimal)
        except ValueError:
            body = None
        missing = [
            f
            for f in ("amount", "payment_method", "payment_id", "status")
            if not isinstance(body, dict) or body.get(f) in (None, "")
        ]
        if missing or not isinstance(body["amount"], Decimal) or body["amount"] <= 0:
            self.state.count(tenant.name, "topup")
            errors = {f: [f"The {f} field is required."] for f in missing} or {
                "amount": ["The amount must be a positive number."]
            }
            return json_response({"message": "The given data was invalid.", "errors": errors}, 422)

        async def handle() -> Response:
            fault = self.topup_faults.get(tenant.name)
            if fault == "503-before-commit":
                return json_response(error_body(503, "Service Unavailable"), 503)
            if fault == "accept-then-reset":
                raise SimulatedReset("read the request, then dropped the connection")
            transaction = self._commit(tenant, body, fault)
            if fault == "commit-then-hang":
                await asyncio.sleep(HANG_SECONDS)
            if fault == "commit-then-reset":
                raise SimulatedReset("committed, then dropped the connection")
            if fault == "503-after-commit":
                return json_response(error_body(503, "Service Unavailable"), 503)
            return json_response(envelope(tenant, {"transaction": transaction}))

        return await with_faults(self.state, tenant.name, "topup", error_body, handle)

    async def balance(self, request: Request) -> Response:
        tenant = self.by_key.get(bearer(request) or "")
        if tenant is None:
            self.state.count("anonymous", "balance")
            return json_response(error_body(401, "Unauthenticated."), 401)

        async def handle() -> Response:
            credit = self.balances[tenant.name]
            credit += self.state.books.moved(tenant.name, "credit", self.state.clock())
            return json_response(envelope(tenant, {"balance": credit}))

        return await with_faults(self.state, tenant.name, "balance", error_body, handle)

    def routes(self) -> list[Route]:
        return [
            Route("/v1/current/balance", self.balance, methods=["GET"]),
            Route("/v1/transactions/topUpBalance", self.top_up, methods=["POST"]),
        ]


FAKE = FakeSpec(
    prefix="/ourvoice",
    tenants=OURVOICE,
    build=OurVoiceFake,
    account=lambda t: {"api_key": t.api_key},
)
