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
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from gateway.simulator.books import Listed
from gateway.simulator.fake import FakeSpec
from gateway.simulator.state import SimState, json_response, utc_text, with_faults


@dataclass(frozen=True)
class PaymobTenant:
    name: str
    public_key: str
    secret_key: str
    merchant_id: int
    amount_available: Decimal
    available_commission: Decimal
    last_commission_withdrawal: str


PAYMOB = (
    PaymobTenant(
        "paymob-eg",
        "demo-paymob-public-key",
        "demo-paymob-secret-key",
        123,
        Decimal("1292.25"),
        Decimal("12.90"),
        "2023-03-16T11:47:24.927Z",
    ),
)


PAYMOB_STATUSES = ("SUCCESS", "SUCCESS", "PENDING", "FAILED", "SUCCESS", "REVERSED_BY_BANK")
PAYMOB_TYPES = ("card", "accept_balance", "card", "commission_withdrawal")


# Instants on both sides of Cairo midnight, around both DST changes of 2024.
CAIRO_EDGES = (
    "2024-04-25T21:59:59.000000Z",  # Cairo 23:59:59 (UTC+2), 25 April
    "2024-04-25T22:00:00.000000Z",  # Cairo 01:00 on 26 April: the clocks jumped
    "2024-06-10T20:59:59.999999Z",  # Cairo 23:59:59 (UTC+3), 10 June
    "2024-06-10T21:00:00.000000Z",  # Cairo 00:00, 11 June
    "2024-10-31T20:30:00.000000Z",  # Cairo 23:30 (UTC+3), 31 October
    "2024-10-31T21:30:00.000000Z",  # Cairo 23:30 again (UTC+2): the clocks went back
    "2024-10-31T22:00:00.000000Z",  # Cairo 00:00, 1 November
)


def paymob_rows() -> list[dict[str, object]]:
    start = datetime(2024, 4, 20, 7, 13, 5, 120000, tzinfo=UTC)
    stamps = [utc_text(start + timedelta(minutes=919 * i)) for i in range(313)] + list(CAIRO_EDGES)
    rows: list[dict[str, object]] = []
    for i, stamp in enumerate(sorted(stamps)):
        rows.append(
            {
                "date_created": stamp,
                "initiator": "accept" if i % 3 else "merchant",
                "recipient": "bills",
                "amount": Decimal(f"{(i * 37) % 5000 + 10}.{i % 100:02d}"),
                "transaction_ref": f"{6269928401296462697948221 + i * 7919:025d}",
                "transaction_type": PAYMOB_TYPES[i % len(PAYMOB_TYPES)],
                "status": PAYMOB_STATUSES[i % len(PAYMOB_STATUSES)],
            }
        )
    return rows[::-1]  # newest first, as the API lists them


PAYMOB_CASE = {"success": "SUCCESS", "pending": "PENDING", "failed": "FAIL"}


def listed_row(row: Listed) -> dict[str, object]:
    """A balance transaction of the books in its documented shape (`transaction_ref` is
    the movement's id, 25 digits)."""
    m = row.movement
    return {
        "date_created": utc_text(datetime.fromtimestamp(row.at, UTC)),
        "initiator": "accept" if m.credit else "bills",
        "recipient": "bills" if m.credit else "merchant",
        "amount": row.amount,
        "transaction_ref": m.id,
        "transaction_type": m.kind,
        "status": PAYMOB_CASE.get(m.status, m.status),
    }


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


PAGE_SIZE = 50
CAIRO = ZoneInfo("Africa/Cairo")
FILTERS = ("status", "initiator", "recipient", "transaction_type", "transaction_ref")


class PaymobLedger:
    """Each tenant's balance transactions, newest first; tests may `insert` new ones."""

    def __init__(self, tenants: tuple[PaymobTenant, ...], state: SimState | None = None) -> None:
        self.rows: dict[str, list[dict[str, object]]] = {t.name: paymob_rows() for t in tenants}
        self.state = state

    def insert(self, tenant: str, row: dict[str, object]) -> None:
        self.rows[tenant].insert(0, row)

    def listing(self, tenant: str, request: Request) -> Response:
        query = request.query_params
        try:
            page = int(query.get("page", "1"))
            size = min(int(query.get("size", str(PAGE_SIZE))), PAGE_SIZE)
            date_from = date.fromisoformat(query["date_from"]) if "date_from" in query else None
            date_to = date.fromisoformat(query["date_to"]) if "date_to" in query else None
        except ValueError:
            return json_response(error_body(400, "Invalid filter."), 400)
        if page < 1 or size < 1:
            return json_response(error_body(404, "Invalid page."), 404)

        def keep(row: dict[str, object]) -> bool:
            if any(name in query and str(row[name]) != query[name] for name in FILTERS):
                return False
            created = datetime.fromisoformat(str(row["date_created"]).replace("Z", "+00:00"))
            day = created.astimezone(CAIRO).date()  # the filters' dates are Cairo's
            return (date_from is None or day >= date_from) and (date_to is None or day <= date_to)

        booked = []
        if self.state is not None:
            booked = [listed_row(r) for r in self.state.books.listed(tenant, self.state.clock())]
        rows = [r for r in [*booked, *self.rows[tenant]] if keep(r)]
        chunk = rows[(page - 1) * size : page * size]
        if page > 1 and not chunk:
            return json_response(error_body(404, "Invalid page."), 404)
        base = str(request.url.replace(query=""))

        def link(number: int) -> str:
            return f"{base}?{urlencode({**dict(query), 'page': number})}"

        more = page * size < len(rows)
        return json_response(
            {
                "count": len(rows),
                "next": link(page + 1) if more else None,
                "previous": link(page - 1) if page > 1 else None,
                "results": chunk,
            }
        )


def routes(
    state: SimState, tenants: tuple[PaymobTenant, ...] = PAYMOB, ledger: PaymobLedger | None = None
) -> list[Route]:
    verifier = Verifier(state, tenants)
    ledger = ledger or PaymobLedger(tenants, state)

    def moved(tenant: PaymobTenant, balance: str, amount: Decimal) -> Decimal:
        return amount + state.books.moved(tenant.name, balance, state.clock())

    async def balance(request: Request) -> Response:
        tenant = verifier.tenant_of(request)
        if tenant is None:
            state.count("anonymous", "balance")
            return json_response(error_body(401, "Invalid signature."), 401)

        async def handle() -> Response:
            return json_response(
                {
                    "amount_available": moved(tenant, "available", tenant.amount_available),
                    "available_commission": moved(
                        tenant, "commission", tenant.available_commission
                    ),
                    "last_commission_withdrawal": tenant.last_commission_withdrawal,
                    "merchant_id": tenant.merchant_id,
                }
            )

        return await with_faults(state, tenant.name, "balance", error_body, handle)

    async def transactions(request: Request) -> Response:
        tenant = verifier.tenant_of(request)
        if tenant is None:
            state.count("anonymous", "transactions")
            return json_response(error_body(401, "Invalid signature."), 401)

        async def handle() -> Response:
            assert ledger is not None
            return ledger.listing(tenant.name, request)

        return await with_faults(state, tenant.name, "transactions", error_body, handle)

    async def append_slash(request: Request) -> Response:
        return RedirectResponse(str(request.url.replace(path=request.url.path + "/")), 301)

    return [
        Route("/api/v1/balance/", balance, methods=["GET"]),
        Route("/api/v1/balance", append_slash, methods=["GET"]),
        Route("/api/v1/balance_transactions/", transactions, methods=["GET"]),
        Route("/api/v1/balance_transactions", append_slash, methods=["GET"]),
    ]


class PaymobFake:
    """`ledger` is the handle tests use (`insert` a row at the top)."""

    def __init__(self, state: SimState, tenants: tuple[PaymobTenant, ...]) -> None:
        self.state, self.tenants = state, tenants
        self.ledger = PaymobLedger(tenants, state)

    def routes(self) -> list[Route]:
        return routes(self.state, self.tenants, self.ledger)


FAKE = FakeSpec(
    prefix="/paymob",
    tenants=PAYMOB,
    build=PaymobFake,
    account=lambda t: {"public_key": t.public_key, "secret_key": t.secret_key},
)
