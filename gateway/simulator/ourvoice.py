"""Fake Our Voice (from provider-docs/ourvoice.txt): static Bearer key, nested envelope.

`GET /v1/current/balance` → `{"data": {"success": true, "message": …, "data": <inner>}}`
with `<inner>` a JSON-encoded string or an object, per tenant. Errors are Laravel-style
`{"message": …}`. Each tenant's credit is kept in `balances` (a ledger tests may change).
"""

from __future__ import annotations

from decimal import Decimal

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.simulator.seed import OURVOICE, OurVoiceTenant
from gateway.simulator.state import SimState, bearer, dumps, json_response, with_faults


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


class OurVoiceFake:
    def __init__(self, state: SimState, tenants: tuple[OurVoiceTenant, ...] = OURVOICE) -> None:
        self.state = state
        self.by_key = {t.api_key: t for t in tenants}
        self.balances: dict[str, Decimal] = {t.name: t.balance for t in tenants}

    async def balance(self, request: Request) -> Response:
        tenant = self.by_key.get(bearer(request) or "")
        if tenant is None:
            self.state.count("anonymous", "balance")
            return json_response(error_body(401, "Unauthenticated."), 401)

        async def handle() -> Response:
            return json_response(envelope(tenant, {"balance": self.balances[tenant.name]}))

        return await with_faults(self.state, tenant.name, "balance", error_body, handle)

    def routes(self) -> list[Route]:
        return [Route("/v1/current/balance", self.balance, methods=["GET"])]
