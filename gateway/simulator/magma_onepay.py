"""Fake Magma OnePay (from provider-docs/magma_onepay.txt): Bearer private key, optional
`X-User-Secret` (checked when sent), `{"code": 200, "message": "OK", "data": [...]}` with
JSON-number floats and zone-less `YYYY-MM-DD HH:MM:SS` timestamps."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.simulator.books import Listed
from gateway.simulator.fake import FakeSpec
from gateway.simulator.state import (
    SimState,
    bearer,
    dumps,
    json_response,
    utc_text,
    with_faults,
)


@dataclass(frozen=True)
class MagmaTenant:
    name: str
    private_key: str
    secret_key: str
    corridors: tuple[dict[str, object], ...]


def _corridor(
    name: str, prefix: str, code: str, currency: str, balance: str, available: str, updated: str
) -> dict[str, object]:
    return {
        "name": name,
        "prefix": prefix,
        "code": code,
        "currency": currency,
        "balance": Decimal(balance),
        "balance_available": Decimal(available),
        "last_updated_at": updated,
    }


MAGMA = (
    MagmaTenant(
        "magma",
        "demo-magma-private-key",
        "demo-magma-secret-key",
        (
            _corridor("Benin", "+229", "BJ", "XOF", "1250000", "1200000", "2024-06-04 00:43:26"),
            _corridor("Mali", "+223", "ML", "XOF", "0", "0", "2024-06-04 00:43:26"),
            _corridor(
                "Côte d'Ivoire", "+225", "CI", "XOF", "3400500", "3400500", "2024-06-03 23:59:59"
            ),
            _corridor(
                "Guinea (Conakry)",
                "+224",
                "GN",
                "GNF",
                "98000000",
                "97500000",
                "2024-06-04 01:02:03",
            ),
            _corridor("Ghana", "+233", "GH", "GHS", "15230.75", "15000.25", "2024-06-04 08:15:00"),
            _corridor("Senegal", "+221", "SN", "XOF", "780250", "780250", "2024-06-04 00:43:26"),
            _corridor("Burkina Faso", "+226", "BF", "XOF", "45000", "44000", "2024-06-02 12:00:00"),
            _corridor("Cameroon", "+237", "CM", "XAF", "2210000", "2210000", "2024-06-04 10:30:45"),
            _corridor("Togo", "+228", "TG", "XOF", "0", "0", "2024-05-31 18:20:00"),
            _corridor(
                "Sierra Leone", "+232", "SL", "SLE", "8200.10", "8200.10", "2024-06-04 07:07:07"
            ),
            _corridor("Kenya", "+254", "KE", "KES", "53000.55", "52000.05", "2024-06-04 06:00:00"),
            _corridor("Uganda", "+256", "UG", "UGX", "1500000", "1500000", "2024-06-04 05:45:12"),
            _corridor(
                "DR Congo", "+243", "RDC", "CDF", "2750000.40", "2700000.40", "2024-06-04 09:09:09"
            ),
        ),
    ),
)


MAGMA_STATUSES = ("success", "pending", "new", "failed", "refunded", "cancelled", "on_hold")
MAGMA_COUNTRIES = (
    ("Senegal", "SN", "XOF"),
    ("Ghana", "GH", "GHS"),
    ("Cameroon", "CM", "XAF"),
    ("DR Congo", "RDC", "CDF"),
)


def magma_rows(now: datetime) -> list[dict[str, object]]:
    """Payouts every 11 hours over the 90 days before `now`, in the documented row shape
    (every documented field); every 10th row leaves out the optional ones, and one status
    is not documented (it must come out UNKNOWN with its raw value kept)."""
    rows: list[dict[str, object]] = []
    for i in range(int(90 * 24 / 11)):
        moment = now - timedelta(hours=11 * i, minutes=i % 60)
        name, code, currency = MAGMA_COUNTRIES[i % len(MAGMA_COUNTRIES)]
        status = MAGMA_STATUSES[i % len(MAGMA_STATUSES)]
        row: dict[str, object] = {
            "created_at": utc_text(moment),
            "done_at": utc_text(moment + timedelta(seconds=40)) if status == "success" else None,
            "transfer_token": f"9b2f{i:04d}-8c1d-4e2a-a7f3-{i:012d}",
            "merchant_transaction_id": f"PAYOUT-{i:06d}",
            "country_name": name,
            "country_code": code,
            "amount": Decimal(f"{(i * 53) % 100000 + 100}")
            if currency in ("XOF", "XAF")
            else Decimal(f"{(i * 53) % 1000}.{i % 100:02d}"),
            "currency": currency,
            "description": f"Payout {i}",
            "channel": "airtime" if i % 5 == 0 else "mobile_money",
            "receiver_account": f"+22177{i:07d}",
            "receiver_first_name": "Awa",
            "receiver_last_name": f"Diop{i}",
            "webhook_url": "https://merchant.example/hooks/magma",
            "custom_field": None,
            "status": status,
        }
        if i % 10 == 9:
            for optional in (
                "done_at",
                "merchant_transaction_id",
                "country_name",
                "country_code",
                "description",
                "channel",
                "receiver_account",
                "receiver_first_name",
                "receiver_last_name",
                "webhook_url",
                "custom_field",
            ):
                del row[optional]
        rows.append(row)
    return rows


def error_body(status: int, message: str) -> dict[str, object]:
    return {"code": status, "message": message, "data": None}


def listed_row(row: Listed, corridors: dict[str, dict[str, object]]) -> dict[str, object]:
    """A payout of the books in the history's documented shape (every row is a payout)."""
    m = row.movement
    corridor = corridors.get(m.balance, {})
    moment = datetime.fromtimestamp(row.at, UTC)
    return {
        "created_at": utc_text(moment),
        "done_at": utc_text(moment + timedelta(seconds=40)) if m.status == "success" else None,
        "transfer_token": m.id,
        "merchant_transaction_id": m.reference,
        "country_name": corridor.get("name"),
        "country_code": m.balance,
        "amount": row.amount,
        "currency": corridor.get("currency"),
        "description": f"Payout {m.id}",
        "channel": "mobile_money",
        "receiver_account": "+221770000001",
        "receiver_first_name": "Awa",
        "receiver_last_name": "Diop",
        "webhook_url": "https://merchant.example/hooks/magma",
        "custom_field": None,
        "status": m.status,
    }


def moved_corridor(state: SimState, tenant: str, corridor: dict[str, object]) -> dict[str, object]:
    """A corridor's float moved by the books (total and available alike)."""
    moved = state.books.moved(tenant, str(corridor["code"]), state.clock())
    if not moved:
        return corridor
    total, available = corridor["balance"], corridor["balance_available"]
    assert isinstance(total, Decimal) and isinstance(available, Decimal)
    return {**corridor, "balance": total + moved, "balance_available": available + moved}


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
            if state.books.has(tenant.name):
                corridors = [moved_corridor(state, tenant.name, c) for c in tenant.corridors]
                return json_response({"code": 200, "message": "OK", "data": corridors})
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
            corridors = {str(c["code"]): c for c in tenant.corridors}
            booked = [
                listed_row(r, corridors) for r in state.books.listed(tenant.name, state.clock())
            ]
            rows = [
                r
                for r in [*booked, *HISTORY]
                if start <= moment_of(r) <= end
                and all(
                    request.query_params.get(name) in (None, r.get(name))
                    for name in ("status", "currency", "channel")
                )
            ]
            return json_response({"code": 200, "message": "OK", "data": rows})

        return await with_faults(state, tenant.name, "history", error_body, handle)

    return [
        Route("/v1/misc/balance", balance, methods=["GET"]),
        Route("/v1/payout/transfer/history", history, methods=["GET"]),
    ]


HISTORY = magma_rows(datetime(2024, 6, 4, 0, 43, 26, tzinfo=UTC))


def moment_of(row: dict[str, object]) -> datetime:
    """A row's `created_at` (ISO-8601 with Z) as the zone-less UTC the filters are in."""
    return datetime.strptime(str(row["created_at"]), "%Y-%m-%dT%H:%M:%S.%fZ")


def parse_moment(value: str | None, now: datetime, start: bool) -> datetime:
    """`YYYY-MM-DD HH:MM:SS` (zone-less, UTC); without one, today's start or end."""
    if value is None:
        day = now.replace(hour=0, minute=0, second=0, microsecond=0)
        return day if start else day + timedelta(days=1, microseconds=-1)
    return datetime.strptime(value, "%Y-%m-%d %H:%M:%S")


class MagmaFake:
    def __init__(self, state: SimState, tenants: tuple[MagmaTenant, ...]) -> None:
        self.state, self.tenants = state, tenants

    def routes(self) -> list[Route]:
        return routes(self.state, self.tenants)


FAKE = FakeSpec(
    prefix="/magma",
    tenants=MAGMA,
    build=MagmaFake,
    account=lambda t: {"private_key": t.private_key, "secret_key": t.secret_key},
)
