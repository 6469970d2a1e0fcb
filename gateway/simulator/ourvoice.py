"""Fake Our Voice (from provider-docs/ourvoice.txt): static Bearer key, nested envelope.

`GET /v1/current/balance` → `{"data": {"success": true, "message": …, "data": <inner>}}`
with `<inner>` a JSON-encoded string or an object, per tenant. Errors are Laravel-style
`{"message": …}`.
"""

from __future__ import annotations

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


def routes(state: SimState, tenants: tuple[OurVoiceTenant, ...] = OURVOICE) -> list[Route]:
    by_key = {t.api_key: t for t in tenants}

    async def balance(request: Request) -> Response:
        tenant = by_key.get(bearer(request) or "")
        if tenant is None:
            state.count("anonymous", "balance")
            return json_response(error_body(401, "Unauthenticated."), 401)

        async def handle() -> Response:
            return json_response(envelope(tenant, {"balance": tenant.balance}))

        return await with_faults(state, tenant.name, "balance", error_body, handle)

    return [Route("/v1/current/balance", balance, methods=["GET"])]
