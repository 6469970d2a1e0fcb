"""Fake Paymob Bills (from provider-docs/paymob_bills.txt): per-request HMAC signature.

The `Authorization` header is base64("<public>.<YYYYMMDDTHHmm>.<hex hmac>.<nonce>"), the
HMAC-SHA256 (secret key) of method + path + public key + timestamp + nonce. The simulator
refuses a timestamp outside ±`window_minutes` of its clock and a nonce seen before. Every
path ends with a slash (Django-style: a path without it is redirected). Errors are DRF-style
`{"detail": …}`; `Accept-Language: en` gets English messages.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from datetime import UTC, datetime

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from gateway.simulator.seed import PAYMOB, PaymobTenant
from gateway.simulator.state import SimState, json_response, with_faults

WINDOW_MINUTES = 5


def error_body(status: int, message: str) -> dict[str, object]:
    return {"detail": message}


class Verifier:
    def __init__(self, state: SimState, tenants: tuple[PaymobTenant, ...]) -> None:
        self.state = state
        self.by_public = {t.public_key: t for t in tenants}
        self.seen_nonces: dict[str, float] = {}

    def tenant_of(self, request: Request) -> PaymobTenant | None:
        try:
            decoded = base64.b64decode(request.headers.get("authorization", ""), validate=True)
            public, stamp, signature, nonce = decoded.decode().split(".")
            signed_at = datetime.strptime(stamp, "%Y%m%dT%H%M").replace(tzinfo=UTC)
        except (binascii.Error, UnicodeDecodeError, ValueError):
            return None
        tenant = self.by_public.get(public)
        now = self.state.clock()
        if tenant is None or abs(signed_at.timestamp() - now) > WINDOW_MINUTES * 60 + 60:
            return None
        path = request.scope.get("raw_path", b"").decode() or request.url.path
        message = f"{request.method}{path.split('?')[0]}{public}{stamp}{nonce}"
        expected = hmac.new(tenant.secret_key.encode(), message.encode(), hashlib.sha256)
        if not hmac.compare_digest(expected.hexdigest(), signature) or not nonce:
            return None
        self.seen_nonces = {n: t for n, t in self.seen_nonces.items() if t > now - 3600}
        if nonce in self.seen_nonces:
            return None
        self.seen_nonces[nonce] = now
        return tenant


def routes(state: SimState, tenants: tuple[PaymobTenant, ...] = PAYMOB) -> list[Route]:
    verifier = Verifier(state, tenants)

    async def balance(request: Request) -> Response:
        tenant = verifier.tenant_of(request)
        if tenant is None:
            state.count("anonymous", "balance")
            return json_response(error_body(401, "Invalid signature."), 401)

        async def handle() -> Response:
            return json_response(
                {
                    "amount_available": tenant.amount_available,
                    "available_commission": tenant.available_commission,
                    "last_commission_withdrawal": tenant.last_commission_withdrawal,
                    "merchant_id": tenant.merchant_id,
                }
            )

        return await with_faults(state, tenant.name, "balance", error_body, handle)

    async def append_slash(request: Request) -> Response:
        return RedirectResponse(str(request.url.replace(path=request.url.path + "/")), 301)

    return [
        Route("/api/v1/balance/", balance, methods=["GET"]),
        Route("/api/v1/balance", append_slash, methods=["GET"]),
    ]
