"""Deterministic demo data. Credentials here are demo values, known to `deploy/demo.toml`.

Chosen to exercise every quirk: Our Voice inner `data` as a string (SN) and as an object
(CI); every Magma corridor including DR Congo as `RDC`, with per-country zone-less
timestamps; Muda c-assets with 7-decimal strings and a bare "0"; Paymob's commission.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal


@dataclass(frozen=True)
class OurVoiceTenant:
    name: str
    api_key: str
    balance: Decimal
    inner_as_string: bool


@dataclass(frozen=True)
class MagmaTenant:
    name: str
    private_key: str
    secret_key: str
    corridors: tuple[dict[str, object], ...]


@dataclass(frozen=True)
class MudaTenant:
    name: str
    api_key: str
    secret_key: str
    balances: tuple[dict[str, object], ...]


@dataclass(frozen=True)
class PaymobTenant:
    name: str
    public_key: str
    secret_key: str
    merchant_id: int
    amount_available: Decimal
    available_commission: Decimal
    last_commission_withdrawal: str


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


def _muda(i: int, code: str, issuer: str, currency: str, balance: str) -> dict[str, object]:
    return {
        "id": i,
        "asset_code": code,
        "asset_issuer": issuer,
        "currency": currency,
        "balance": balance,
    }


OURVOICE = (
    OurVoiceTenant("ourvoice-sn", "demo-ourvoice-sn-key", Decimal("50000"), inner_as_string=True),
    OurVoiceTenant("ourvoice-ci", "demo-ourvoice-ci-key", Decimal("125750"), inner_as_string=False),
)

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
