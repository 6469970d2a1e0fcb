"""The simulator's books: money that moves over (simulated) time, and statements that lie.

Every fake keeps its seed balances and seed history; the books add movements on top. A
`Movement` changes one balance of one tenant at its time `at` (the truth), and the
provider's own statement lists it — or fails to, in one of the ways real statements do
(`STATEMENT_FAULTS`). Everything is a function of the simulator's clock: a movement moves
the balance once the clock reaches `at`, a row is listed once the clock reaches the time it
is listed at, so a replay on an injected clock sees what a provider would have shown then.

Fees [assume]: a movement's `fee` is always charged to the account, on top of the amount —
a debit of 1,000 with a fee of 100 costs 1,100, a credit of 1,000 with a fee of 100 brings
900 — as Muda's statement lists `amount` and `fee` side by side.

Each fake renders the listed rows in its provider's documented shape and adds `moved()` to
its seed balances; a kind its provider does not list at all (Magma's collections, Paymob's
bill payments, Our Voice's usage) is posted with `listed=False`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

DAY = 86400.0
REVERSAL_AFTER = 3600.0  # a reversed movement comes back an hour later

STATEMENT_FAULTS = {
    "missing_row": "the movement changes the balance; the statement never lists it",
    "duplicate_row": "the statement lists it twice, under the same id",
    "fee_netted": "listed with its amount net of its fee, the fee still listed beside it",
    "next_day": "listed a day after it moved the balance (its row dated then)",
    "reversal": "moves the balance, is reversed an hour later (the money back), and the "
    "statement still lists it as it stood, with no reversing row",
}
STATUSES = ("success", "pending", "failed")  # each fake writes them in its own case


@dataclass(frozen=True)
class Movement:
    """`balance` is the fake's own key of the balance it moves: Muda's asset code, Magma's
    corridor code (`BJ`, `RDC`), Paymob's `available` or `commission`, Our Voice's
    `credit`. `kind` is the provider's own type of row (`PUSH`, `card`, `payout`, …)."""

    id: str
    balance: str
    kind: str
    credit: bool
    amount: Decimal
    at: float
    fee: Decimal = Decimal(0)
    status: str = "success"  # only a success moves money
    reference: str | None = None
    listed: bool = True  # does the provider's statement list this kind at all
    fault: str | None = None  # one of STATEMENT_FAULTS

    @property
    def effect(self) -> Decimal:
        """What it does to its balance: the amount in or out, and the fee out."""
        return (self.amount if self.credit else -self.amount) - self.fee


@dataclass(frozen=True)
class Listed:
    """One row of a statement: the movement, when the row is dated and the amount it shows."""

    movement: Movement
    at: float
    amount: Decimal


def movement_from_json(data: Any, clock: Callable[[], float]) -> Movement:
    """A movement from a control request (`POST /_sim/books/{tenant}`); ValueError says
    what is wrong. `at` defaults to now; amounts are strings or numbers."""
    if not isinstance(data, dict):
        raise ValueError("the body must be a JSON object")
    known = set(Movement.__dataclass_fields__)
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"unknown fields: {', '.join(unknown)}")
    missing = sorted({"id", "balance", "kind", "credit", "amount"} - set(data))
    if missing:
        raise ValueError(f"missing fields: {', '.join(missing)}")
    if data.get("fault") not in (None, *STATEMENT_FAULTS):
        raise ValueError(f"fault must be one of {', '.join(STATEMENT_FAULTS)}")
    if data.get("status", "success") not in STATUSES:
        raise ValueError(f"status must be one of {', '.join(STATUSES)}")
    try:
        amount, fee = Decimal(str(data["amount"])), Decimal(str(data.get("fee", "0")))
        at = float(data.get("at", clock()))
    except (ArithmeticError, TypeError, ValueError):
        raise ValueError("amount and fee must be decimal numbers, at a number") from None
    if not amount.is_finite() or amount <= 0 or not fee.is_finite() or fee < 0:
        raise ValueError("amount must be above zero and fee not below it")
    return Movement(
        **{**data, "amount": amount, "fee": fee, "at": at, "credit": data["credit"] is True}
    )


class Books:
    def __init__(self) -> None:
        self.movements: dict[str, list[Movement]] = {}

    def post(self, tenant: str, movement: Movement) -> None:
        self.movements.setdefault(tenant, []).append(movement)

    def has(self, tenant: str) -> bool:
        return bool(self.movements.get(tenant))

    def moved(self, tenant: str, balance: str, now: float) -> Decimal:
        """How far the tenant's movements have moved `balance` by `now`."""
        total = Decimal(0)
        for m in self.movements.get(tenant, ()):
            if m.balance != balance or m.status != "success" or m.at > now:
                continue
            total += m.effect
            if m.fault == "reversal" and m.at + REVERSAL_AFTER <= now:
                total += -m.amount if m.credit else m.amount
        return total

    def listed(self, tenant: str, now: float) -> list[Listed]:
        """The statement's rows as the provider shows them at `now`, newest first."""
        rows: list[Listed] = []
        for m in self.movements.get(tenant, ()):
            if not m.listed or m.fault == "missing_row":
                continue
            at = m.at + DAY if m.fault == "next_day" else m.at
            if at > now:
                continue
            amount = m.amount - m.fee if m.fault == "fee_netted" else m.amount
            rows += [Listed(m, at, amount)] * (2 if m.fault == "duplicate_row" else 1)
        return sorted(rows, key=lambda r: (r.at, r.movement.id), reverse=True)
