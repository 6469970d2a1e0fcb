"""Fake Magma OnePay (from provider-docs/magma_onepay.txt): Bearer private key, optional
`X-User-Secret` (checked when sent), `{"code": 200, "message": "OK", "data": [...]}` with
JSON-number floats and zone-less `YYYY-MM-DD HH:MM:SS` timestamps."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.simulator.seed import MAGMA, MagmaTenant
from gateway.simulator.state import SimState, bearer, dumps, json_response, with_faults


def error_body(status: int, message: str) -> dict[str, object]:
    return {"code": status, "message": message, "data": None}


def routes(state: SimState, tenants: tuple[MagmaTenant, ...] = MAGMA) -> list[Route]:
    by_key = {t.private_key: t for t in tenants}
    bodies = {
        t.name: dumps({"code": 200, "message": "OK", "data": list(t.corridors)}) for t in tenants
    }

    async def balance(request: Request) -> Response:
        tenant = by_key.get(bearer(request) or "")
        secret = request.headers.get("x-user-secret")
        if tenant is None or (secret is not None and secret != tenant.secret_key):
            state.count("anonymous", "balance")
            return json_response(error_body(401, "Unauthorized"), 401)

        async def handle() -> Response:
            return Response(bodies[tenant.name], media_type="application/json")

        return await with_faults(state, tenant.name, "balance", error_body, handle)

    return [Route("/v1/misc/balance", balance, methods=["GET"])]
