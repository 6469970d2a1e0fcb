"""A generated month of money for the daily close's replay: every provider's spending,
collections and top-ups, and statement faults at random (`gateway/simulator/books.py`).

Plain data: what happened (the truth), what each provider lists, and each fault — what the
test's oracle reads. Rules that keep each fault on its own (so that "classified as what it
is" has one answer): at most one fault per balance and day, each on a movement between 03:00
and 20:00 UTC (the same day in UTC and in Cairo), none on the month's first and last days, and the day after a fault of a row posted the next day left clean. Movements
never fall on a reading's instant (the readings are hourly, on the hour, plus two around
each top-up, at :36 and :46; nothing moves from :35 to :47).
"""

from __future__ import annotations

import functools
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from gateway.simulator.books import Movement

START = datetime(2025, 4, 12, tzinfo=UTC)  # Cairo's clocks jump on 25 April 2025
DAYS = 30
HOUR = 3600.0


@dataclass(frozen=True)
class Fault:
    tenant: str
    balance: str  # the fake's key (UGX, BJ, available, credit)
    kind: str  # a statement fault, or Our Voice's "never-posts" / "posts-next-day"
    movement_id: str


@dataclass(frozen=True)
class TopUp:
    at: float
    amount: Decimal
    reference: str
    fault: str | None  # an Our Voice top-up fault mode


@dataclass
class Month:
    movements: dict[str, list[Movement]] = field(default_factory=dict)  # tenant → its own
    topups: list[TopUp] = field(default_factory=list)  # ourvoice-sn, through the gateway
    faults: list[Fault] = field(default_factory=list)

    @property
    def start(self) -> float:
        return START.timestamp()

    @property
    def end(self) -> float:
        return (START + timedelta(days=DAYS)).timestamp()


def _moment(rng: random.Random, day: date) -> float:
    """A second of the day (UTC) away from the readings: minutes 2–33 or 48–58."""
    hour = rng.randrange(24)
    minute = rng.choice([*range(2, 34), *range(48, 59)])
    at = datetime(day.year, day.month, day.day, hour, minute, rng.randrange(1, 59), tzinfo=UTC)
    return at.timestamp()


def _amount(rng: random.Random, low: int, high: int, places: int) -> Decimal:
    whole = Decimal(rng.randrange(low, high))
    if places:
        whole += Decimal(rng.randrange(1, 10**places)).scaleb(-places)
    return whole


def _move(
    add: Callable[..., Movement],
    rng: random.Random,
    day: date,
    day_moves: dict[tuple[str, str], list[Movement]],
    tenant: str,
    balance: str,
    **fields: object,
) -> None:
    m = add(tenant, balance=balance, at=_moment(rng, day), **fields)
    day_moves.setdefault((tenant, balance), []).append(m)


def generate(seed: int) -> Month:
    rng = random.Random(seed)
    month = Month()
    counter = iter(range(10**6))

    def ident(tenant: str) -> str:
        n = next(counter)
        if tenant == "paymob-eg":
            return f"{6269928401296462697948221 + 10**9 + n:025d}"  # 25 digits
        return f"{tenant}-{n:06d}-0000-4000-8000-{n:012d}"

    def add(tenant: str, **fields: object) -> Movement:
        movement = Movement(id=ident(tenant), **fields)  # type: ignore[arg-type]
        month.movements.setdefault(tenant, []).append(movement)
        return movement

    last_fault: dict[tuple[str, str], int] = {}
    for n in range(DAYS + 1):  # and the day after the month, so its last day has a next
        day = (START + timedelta(days=n)).date()

        day_moves: dict[tuple[str, str], list[Movement]] = {}
        move = functools.partial(_move, add, rng, day, day_moves)

        # Muda, Uganda: payouts (PUSH) and collections (PULL) with fees, a bank deposit now
        # and then, a pending payout; both directions listed.
        for _ in range(rng.randrange(2, 5)):
            move(
                "muda-ug",
                "UGX",
                kind="PUSH",
                credit=False,
                amount=_amount(rng, 1000, 90000, 0),
                fee=Decimal(rng.randrange(0, 5) * 250),
            )
        for _ in range(rng.randrange(1, 4)):
            move(
                "muda-ug",
                "UGX",
                kind="PULL",
                credit=True,
                amount=_amount(rng, 1000, 90000, 0),
                fee=Decimal(rng.randrange(1, 5) * 100),
            )
        if rng.random() < 0.3:
            move(
                "muda-ug",
                "UGX",
                kind="BANK_DEPOSIT",
                credit=True,
                amount=_amount(rng, 100000, 900000, 0),
            )
        if rng.random() < 0.3:
            move(
                "muda-ug",
                "UGX",
                kind="PUSH",
                credit=False,
                status="pending",
                amount=_amount(rng, 1000, 9000, 0),
            )
        # Magma, Benin: payouts listed; collections (money in) never listed.
        for _ in range(rng.randrange(2, 5)):
            move("magma", "BJ", kind="payout", credit=False, amount=_amount(rng, 500, 60000, 0))
        if rng.random() < 0.4:
            move(
                "magma",
                "BJ",
                kind="collection",
                credit=True,
                listed=False,
                amount=_amount(rng, 50000, 200000, 0),
            )
        # Paymob, Egypt: money in listed (card, accept_balance), bill payments not; the
        # commission accrues unlisted and is withdrawn listed.
        for _ in range(rng.randrange(1, 3)):
            move(
                "paymob-eg",
                "available",
                kind=rng.choice(["card", "accept_balance"]),
                credit=True,
                amount=_amount(rng, 100, 5000, 2),
            )
        if rng.random() < 0.5:
            move(
                "paymob-eg",
                "available",
                kind="bill_payment",
                credit=False,
                listed=False,
                amount=_amount(rng, 10, 90, 2),
            )
        if rng.random() < 0.3:
            move(
                "paymob-eg",
                "commission",
                kind="commission_accrual",
                credit=True,
                listed=False,
                amount=_amount(rng, 1, 20, 2),
            )
        # Our Voice, Senegal: messages spend the credit (never listed: no statement).
        for _ in range(rng.randrange(3, 8)):
            move(
                "ourvoice-sn",
                "credit",
                kind="usage",
                credit=False,
                listed=False,
                amount=_amount(rng, 50, 900, 0),
            )
        for _ in range(rng.randrange(0, 3)):
            hour = rng.randrange(24)
            moment = datetime(day.year, day.month, day.day, hour, 42, tzinfo=UTC).timestamp()
            if any(t.at == moment for t in month.topups):
                continue
            reference = f"PAY-{n:02d}-{hour:02d}"
            month.topups.append(TopUp(moment, _amount(rng, 1000, 50000, 0), reference, None))

        # At most one fault per balance and day, not on the first or last day, and the day
        # after a next-day posting left clean.
        if n in (0, DAYS - 1, DAYS):
            continue
        choices = {
            ("muda-ug", "UGX"): (
                "missing_row",
                "duplicate_row",
                "fee_netted",
                "next_day",
                "reversal",
            ),
            ("magma", "BJ"): ("missing_row", "duplicate_row", "next_day", "reversal"),
            ("paymob-eg", "available"): ("missing_row", "duplicate_row", "next_day"),
        }
        for (tenant, balance), kinds in choices.items():
            if rng.random() > 0.35 or last_fault.get((tenant, balance)) == n - 1:
                continue
            kind = rng.choice(kinds)
            moves = [  # 03:00–20:00 UTC: the same day in UTC and in Cairo
                m
                for m in day_moves[(tenant, balance)]
                if m.listed and m.status == "success" and 3 * HOUR < m.at % 86400 < 20 * HOUR
            ]
            if kind in ("duplicate_row",) or tenant == "paymob-eg":
                moves = [m for m in moves if m.credit] or moves
            if kind == "fee_netted":
                moves = [m for m in moves if m.credit and m.fee > 0]
            if kind == "reversal":  # a payout, reversed within its day
                moves = [m for m in moves if not m.credit]
            if not moves:
                continue
            target = rng.choice(moves)
            listing = month.movements[tenant]
            listing[listing.index(target)] = Movement(**{**target.__dict__, "fault": kind})
            month.faults.append(Fault(tenant, balance, kind, target.id))
            if kind == "next_day":
                last_fault[(tenant, balance)] = n
        todays = [t for t in month.topups if t.at >= (START + timedelta(days=n)).timestamp()]
        if todays and rng.random() < 0.4:
            chosen = rng.choice(todays)
            kind = rng.choice(["never-posts", "posts-next-day"])
            month.topups[month.topups.index(chosen)] = TopUp(
                chosen.at, chosen.amount, chosen.reference, kind
            )
            month.faults.append(Fault("ourvoice-sn", "credit", kind, chosen.reference))
    month.topups.sort(key=lambda t: t.at)
    return month
