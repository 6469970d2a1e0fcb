"""Fake Muda Pay (from provider-docs/muda.txt): token exchange, `{"status", "message",
"data"}` envelope, 7-decimal balance strings.

`POST /v1/clients/oauth/token` with `{"api_key", "secret_key"}` issues a JWT-shaped token
that expires after `ttl` seconds of the simulator's clock. `revoke(tenant)` makes every
issued token of a tenant fail with 401 (as after a key rotation upstream); `refuse_all`
refuses every token, new ones included.
"""

from __future__ import annotations

import base64
import json
import secrets
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.simulator.books import Listed
from gateway.simulator.fake import FakeSpec
from gateway.simulator.state import SimState, bearer, json_response, with_faults


@dataclass(frozen=True)
class MudaTenant:
    name: str
    api_key: str
    secret_key: str
    balances: tuple[dict[str, object], ...]


def _muda(i: int, code: str, issuer: str, currency: str, balance: str) -> dict[str, object]:
    return {
        "id": i,
        "asset_code": code,
        "asset_issuer": issuer,
        "currency": currency,
        "balance": balance,
    }


MUDA = (
    MudaTenant(
        "muda-ug",
        "demo-muda-api-key",
        "demo-muda-secret-key",
        (
            _muda(1, "UGX", "issuer_ugx", "UGX", "4621.0000000"),
            _muda(2, "KES", "issuer_kes", "KES", "1520.5000000"),
            _muda(3, "TZS", "issuer_tzs", "TZS", "0"),
            _muda(4, "cUGX", "issuer_ugx", "UGX", "650.0000000"),
            _muda(5, "cKES", "issuer_kes", "KES", "0"),
            _muda(6, "cTZS", "issuer_tzs", "TZS", "12.2500000"),
        ),
    ),
)


# The documented statuses in their documented cases, plus one the docs do not list (it must
# come out UNKNOWN with its raw value kept).
MUDA_STATUSES = ("SUCCESS", "PENDING", "INITIATED", "failed", "MINT_FAILED", "SUCCESS", "ON_HOLD")
MUDA_TYPES = ("PUSH", "PULL", "PUSH", "BANK_DEPOSIT", "SWAP")
MUDA_ASSETS = (("UGX", "UGX"), ("cUGX", "UGX"), ("KES", "KES"), ("UGX", "UGX"), ("TZS", "TZS"))


def muda_rows() -> list[dict[str, object]]:
    """A statement in the documented row shape — every documented field, the ones the
    gateway ignores included — newest first; every 10th row leaves out all the optional
    fields."""
    start = datetime(2024, 5, 1, 8, 0, 0, tzinfo=UTC)
    rows: list[dict[str, object]] = []
    for i in range(60):
        code, currency = MUDA_ASSETS[i % len(MUDA_ASSETS)]
        row: dict[str, object] = {
            "id": 1000 + i,
            "client_id": 77,
            "validation_id": f"VAL-{i:05d}",
            "product_id": 3,
            "trans_type": MUDA_TYPES[i % len(MUDA_TYPES)],
            "trans_id": f"5f0c{i:04d}-6a1e-4b7e-9b1a-{i:012d}",
            "reference_id": f"INV-2024-{i:04d}",
            "stellar_tx_id": f"{i:064x}" if i % 3 else None,
            "amount": f"{(i * 1234) % 90000 + 500}.{i % 7}000000",
            "asset_code": code,
            "currency": currency,
            "sender_account": f"25670{i:07d}",
            "receiver_account": f"25677{i:07d}",
            "memo": f"order {i}",
            "status": MUDA_STATUSES[i % len(MUDA_STATUSES)],
            "fee": f"{i % 9 * 5}.00",
            "service_name": "MOBILE_MONEY" if i % 2 else "BANK",
            "SessionId": f"sess-{i:06d}",
            "created_at": (start + timedelta(hours=13 * i)).strftime("%Y-%m-%dT%H:%M:%S.000Z"),
        }
        if i % 10 == 9:
            for optional in (
                "reference_id",
                "stellar_tx_id",
                "sender_account",
                "receiver_account",
                "memo",
                "fee",
                "service_name",
                "SessionId",
            ):
                del row[optional]
        rows.append(row)
    return rows[::-1]


MUDA_CASE = {"success": "SUCCESS", "pending": "PENDING", "failed": "failed"}


def listed_row(row: Listed) -> dict[str, object]:
    """A row of the books in the statement's documented shape."""
    m = row.movement
    moment = datetime.fromtimestamp(row.at, UTC)
    return {
        "id": zlib.crc32(m.id.encode()),
        "client_id": 77,
        "validation_id": f"VAL-{m.id}",
        "product_id": 3,
        "trans_type": m.kind,
        "trans_id": m.id,
        "reference_id": m.reference,
        "stellar_tx_id": None,
        "amount": format(row.amount, ".7f"),
        "asset_code": m.balance,
        "currency": m.balance.removeprefix("c"),
        "sender_account": "256700000001",
        "receiver_account": "256770000001",
        "memo": m.kind.lower(),
        "status": MUDA_CASE.get(m.status, m.status),
        "fee": format(m.fee, ".2f"),
        "service_name": "MOBILE_MONEY",
        "SessionId": f"sess-{m.id}",
        "created_at": moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z",
    }


def with_books(state: SimState, tenant: str, item: dict[str, object]) -> dict[str, object]:
    """A seed balance moved by the books (7 decimals, as Muda writes them)."""
    moved = state.books.moved(tenant, str(item["asset_code"]), state.clock())
    if not moved:
        return item
    return {**item, "balance": format(Decimal(str(item["balance"])) + moved, ".7f")}


DEFAULT_TOKEN_TTL = 7200


def error_body(status: int, message: str) -> dict[str, object]:
    return {"status": status, "message": message, "data": None}


def documented_failure(what: str) -> Response:
    """`{"status": 400, "message": "Failed to fetch balances", "data": null}` and its
    statement twin, as documented. The docs show only the body: it is sent with HTTP 200
    [assume], the harder case, since the body's `status` is authoritative either way."""
    return json_response(error_body(400, f"Failed to fetch {what}"))


def _b64(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


class MudaTokens:
    def __init__(self, state: SimState, ttl: int = DEFAULT_TOKEN_TTL) -> None:
        self.state = state
        self.ttl = ttl
        self.issued: dict[str, tuple[str, float]] = {}  # token → (tenant, expires at)
        self.refuse_all = False  # fault switch: issue tokens, then refuse every one

    def issue(self, tenant: str) -> str:
        expires = self.state.clock() + self.ttl
        header = _b64({"alg": "HS256", "typ": "JWT"})
        payload = _b64({"sub": tenant, "exp": int(expires), "jti": secrets.token_hex(8)})
        token = f"{header}.{payload}.{secrets.token_urlsafe(24)}"
        self.issued[token] = (tenant, expires)
        return token

    def tenant_of(self, token: str | None) -> str | None:
        tenant, expires = self.issued.get(token or "", (None, 0.0))
        if tenant is None or self.refuse_all or self.state.clock() >= expires:
            return None
        return tenant

    def revoke(self, tenant: str) -> None:
        self.issued = {t: v for t, v in self.issued.items() if v[0] != tenant}


def routes(
    state: SimState, tokens: MudaTokens, tenants: tuple[MudaTenant, ...] = MUDA
) -> list[Route]:
    by_key = {t.api_key: t for t in tenants}
    by_name = {t.name: t for t in tenants}

    async def token(request: Request) -> Response:
        try:
            body = json.loads(await request.body())
        except ValueError:
            body = None
        if not isinstance(body, dict):
            return json_response(error_body(400, "Invalid request body"), 400)
        tenant = by_key.get(str(body.get("api_key")))
        if tenant is None or body.get("secret_key") != tenant.secret_key:
            state.count("anonymous", "token")
            return json_response(error_body(401, "Invalid credentials"), 401)

        async def handle() -> Response:
            data = {
                "access_token": tokens.issue(tenant.name),
                "token_type": "Bearer",
                "expires_in": tokens.ttl,
            }
            return json_response({"status": 200, "message": "success", "data": data})

        return await with_faults(state, tenant.name, "token", error_body, handle)

    async def balance(request: Request) -> Response:
        name = tokens.tenant_of(bearer(request))
        if name is None:
            state.count("anonymous", "balance")
            return json_response(error_body(401, "Unauthorized"), 401)
        tenant = by_name[name]

        async def handle() -> Response:
            return json_response(
                {
                    "status": 200,
                    "message": "Balance fetched successfully",
                    "data": [with_books(state, name, b) for b in tenant.balances],
                }
            )

        return await with_faults(
            state, name, "balance", error_body, handle, documented_failure("balances")
        )

    statements = {t.name: muda_rows() for t in tenants}

    async def statement(request: Request) -> Response:
        name = tokens.tenant_of(bearer(request))
        if name is None:
            state.count("anonymous", "statement")
            return json_response(error_body(401, "Unauthorized"), 401)

        async def handle() -> Response:
            return json_response(
                {
                    "status": 200,
                    "message": "Transaction history fetched",
                    "data": [
                        *(listed_row(r) for r in state.books.listed(name, state.clock())),
                        *statements[name],
                    ],
                }
            )

        return await with_faults(
            state, name, "statement", error_body, handle, documented_failure("transaction history")
        )

    return [
        Route("/v1/clients/oauth/token", token, methods=["POST"]),
        Route("/v1/payment/balance", balance, methods=["GET"]),
        Route("/v1/payment/statement", statement, methods=["GET"]),
    ]


class MudaFake:
    """`tokens` is the handle tests use (revoke, refuse_all)."""

    def __init__(self, state: SimState, tenants: tuple[MudaTenant, ...]) -> None:
        self.state, self.tenants = state, tenants
        self.tokens = MudaTokens(state)

    def routes(self) -> list[Route]:
        return routes(self.state, self.tokens, self.tenants)


FAKE = FakeSpec(
    prefix="/muda",
    tenants=MUDA,
    build=MudaFake,
    account=lambda t: {"api_key": t.api_key, "secret_key": t.secret_key},
    path="/v1",
)
