"""Fake Magma OnePay (from provider-docs/magma_onepay.txt): Bearer private key, optional
`X-User-Secret` (checked when sent), `{"code": 200, "message": "OK", "data": [...]}` with
JSON-number floats and zone-less `YYYY-MM-DD HH:MM:SS` timestamps."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.simulator.history import magma_rows
from gateway.simulator.seed import MAGMA, MagmaTenant
from gateway.simulator.state import SimState, bearer, dumps, json_response, with_faults


def error_body(status: int, message: str) -> dict[str, object]:
    return {"code": status, "message": message, "data": None}


def routes(state: SimState, tenants: tuple[MagmaTenant, ...] = MAGMA) -> list[Route]:
    by_key = {t.private_key: t for t in tenants}
    bodies = {
        t.name: dumps({"code": 200, "message": "OK", "data": list(t.corridors)}) for t in tenants
    }

    def tenant_of(request: Request) -> MagmaTenant | None:
        """Bearer private key, and X-User-Secret checked when it is sent."""
        tenant = by_key.get(bearer(request) or "")
        secret = request.headers.get("x-user-secret")
        if tenant is None or (secret is not None and secret != tenant.secret_key):
            return None
        return tenant

    def refused(route: str) -> Response:
        state.count("anonymous", route)
        return json_response(error_body(401, "Unauthorized"), 401)

    async def balance(request: Request) -> Response:
        tenant = tenant_of(request)
        if tenant is None:
            return refused("balance")

        async def handle() -> Response:
            return Response(bodies[tenant.name], media_type="application/json")

        return await with_faults(state, tenant.name, "balance", error_body, handle)

    async def history(request: Request) -> Response:
        tenant = tenant_of(request)
        if tenant is None:
            return refused("history")

        async def handle() -> Response:
            now = datetime.fromtimestamp(state.clock(), UTC).replace(tzinfo=None)
            try:
                start = parse_moment(request.query_params.get("start_date"), now, start=True)
                end = parse_moment(request.query_params.get("end_date"), now, start=False)
            except ValueError:
                return json_response(error_body(400, "Invalid date"), 400)
            rows = [r for r in HISTORY if start <= moment_of(r) <= end]
            return json_response({"code": 200, "message": "OK", "data": rows})

        return await with_faults(state, tenant.name, "history", error_body, handle)

    return [
        Route("/v1/misc/balance", balance, methods=["GET"]),
        Route("/v1/payout/transfer/history", history, methods=["GET"]),
    ]


HISTORY = magma_rows(datetime(2024, 6, 4, 0, 43, 26, tzinfo=UTC))


def moment_of(row: dict[str, object]) -> datetime:
    return datetime.strptime(str(row["created_at"]), "%Y-%m-%d %H:%M:%S")


def parse_moment(value: str | None, now: datetime, start: bool) -> datetime:
    """`YYYY-MM-DD HH:MM:SS` (zone-less, UTC); without one, today's start or end."""
    if value is None:
        day = now.replace(hour=0, minute=0, second=0, microsecond=0)
        return day if start else day + timedelta(days=1, microseconds=-1)
    return datetime.strptime(value, "%Y-%m-%d %H:%M:%S")
