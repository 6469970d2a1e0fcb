"""Balances and transaction pages ⇄ cached JSON text: exact (Decimal as strings), pure.

A cached entry is always a fresh copy when read back, so no request can mutate what the
next one sees.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

import orjson

from gateway.domain import (
    Asset,
    AssetKind,
    Balance,
    Country,
    Direction,
    Money,
    Transaction,
    TransactionPage,
    TransactionStatus,
)

FORMAT = 2  # 2: transactions carry provider id, counterparty, asset, channel, …


def _money(money: Money | None) -> list[str] | None:
    return None if money is None else [str(money.amount), money.currency]


def _unmoney(value: Any) -> Money | None:
    """Raises ValueError (the entry is a miss) for an amount outside the money domain."""
    return None if value is None else Money(Decimal(value[0]), value[1])


def _country(country: Country | None) -> list[str | None] | None:
    if country is None:
        return None
    return [country.code, country.name, country.dial_prefix, country.currency, country.raw_code]


def encode_balances(balances: tuple[Balance, ...]) -> str:
    rows = [
        {
            "id": b.id,
            "asset": [b.asset.code, b.asset.currency, b.asset.kind.value, b.asset.issuer],
            "total": _money(b.total),
            "available": _money(b.available),
            "pending": _money(b.pending),
            "country": _country(b.country),
            "updated_at": b.updated_at.isoformat() if b.updated_at else None,
        }
        for b in balances
    ]
    return orjson.dumps({"v": FORMAT, "balances": rows}).decode()


def decode_balances(text: str) -> tuple[Balance, ...] | None:
    """None for anything this version did not write (then it is a miss, not an error)."""
    try:
        data = orjson.loads(text)
        if data.get("v") != FORMAT:
            return None
        balances = tuple(
            Balance(
                id=row["id"],
                asset=Asset(
                    row["asset"][0], row["asset"][1], AssetKind(row["asset"][2]), row["asset"][3]
                ),
                total=_unmoney(row["total"]),  # type: ignore[arg-type]
                available=_unmoney(row["available"]),  # type: ignore[arg-type]
                pending=_unmoney(row["pending"]),
                country=Country(*row["country"]) if row["country"] else None,
                updated_at=datetime.fromisoformat(row["updated_at"]) if row["updated_at"] else None,
            )
            for row in data["balances"]
        )
        return balances
    except (ValueError, KeyError, TypeError, IndexError, ArithmeticError):
        return None


def _tx_row(t: Transaction) -> list[Any]:
    return [
        t.id,
        t.account_id,
        t.reference,
        t.type,
        t.status.value,
        t.raw_status,
        _money(t.amount),
        t.created_at.isoformat() if t.created_at else None,
        t.direction.value if t.direction else None,
        _money(t.fee),
        t.payment_method,
        t.initiator,
        t.recipient,
        t.provider_id,
        t.counterparty,
        t.counterparty_name,
        [t.asset.code, t.asset.currency, t.asset.kind.value, t.asset.issuer] if t.asset else None,
        t.channel,
        _country(t.country),
        t.completed_at.isoformat() if t.completed_at else None,
    ]


def encode_transactions(page: TransactionPage) -> str:
    return orjson.dumps(
        {
            "v": FORMAT,
            "rows": [_tx_row(t) for t in page.rows],
            "next": page.next_page,
            "total": page.total,
        }
    ).decode()


def decode_transactions(text: str) -> TransactionPage | None:
    try:
        data = orjson.loads(text)
        if data.get("v") != FORMAT:
            return None
        rows = tuple(
            Transaction(
                id=r[0],
                account_id=r[1],
                reference=r[2],
                type=r[3],
                status=TransactionStatus(r[4]),
                raw_status=r[5],
                amount=_unmoney(r[6]),  # type: ignore[arg-type]
                created_at=datetime.fromisoformat(r[7]) if r[7] else None,
                direction=Direction(r[8]) if r[8] else None,
                fee=_unmoney(r[9]),
                payment_method=r[10],
                initiator=r[11],
                recipient=r[12],
                provider_id=r[13],
                counterparty=r[14],
                counterparty_name=r[15],
                asset=Asset(r[16][0], r[16][1], AssetKind(r[16][2]), r[16][3]) if r[16] else None,
                channel=r[17],
                country=Country(*r[18]) if r[18] else None,
                completed_at=datetime.fromisoformat(r[19]) if r[19] else None,
            )
            for r in data["rows"]
        )
        return TransactionPage(rows, data["next"], data["total"])
    except (ValueError, KeyError, TypeError, IndexError, ArithmeticError):
        return None
