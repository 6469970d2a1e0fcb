"""The daily close over a generated month (`close_month.py`), replayed through the app on
an injected clock against the simulator's books, checked by an oracle written from issue
#28's definitions — not from `gateway/services/daily_close.py`:

- opening / closing: the balance's true value at the day's start / end (the readings are
  hourly, on the hour, and nothing moves at a reading's instant);
- movements: the rows the provider lists dated in the day, counted only when succeeded;
  expected closing = opening + credits − debits − fees; unexplained = closing − expected,
  where a one-direction statement's other direction is "not in any statement";
- every injected fault caught and classified as what it is, wherever the provider's
  documents make it provable (a both-ways statement always; a one-way statement when
  nothing else unlisted moved that day and the fault shows in the direction it lists; a
  duplicated row always); zero false alarms on every other balance and day;
- top-ups MATCHED, UNMATCHED (never posted) or LATE (posted the next day); funding rows
  with no journal entry listed;
- the same CSV bytes from two replicas sharing the database.
"""

from __future__ import annotations

import csv
import dataclasses
import io
from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import httpx

from gateway.domain import StatementCoverage
from gateway.services.daily_close import AccountClose, BalanceClose, csv_rows
from gateway.simulator import Simulator, create_simulator
from gateway.simulator.books import DAY, REVERSAL_AFTER, Movement
from gateway.simulator.state import SimState
from tests.helpers import FakeClock, GatewayClient, demo_settings, running_gateway, topup
from tests.services.close_month import DAYS, START, Month, TopUp, generate

ACCOUNTS = ("ourvoice-sn", "magma", "muda-ug", "paymob-eg")
# (tenant, the fake's key) → (balance id, its statement's coverage per PROVIDERS.md)
BALANCES = {
    ("muda-ug", "UGX"): ("muda-ug:UGX:issuer_ugx", StatementCoverage.BOTH),
    ("magma", "BJ"): ("magma:BJ:XOF", StatementCoverage.DEBITS),
    ("paymob-eg", "available"): ("paymob-eg:available:EGP", StatementCoverage.CREDITS),
    ("paymob-eg", "commission"): ("paymob-eg:commission:EGP", StatementCoverage.DEBITS),
    ("ourvoice-sn", "credit"): ("ourvoice-sn:credit:XOF", StatementCoverage.NONE),
}
SEEDS = {
    ("muda-ug", "UGX"): Decimal("4621"),
    ("magma", "BJ"): Decimal("1200000"),
    ("paymob-eg", "available"): Decimal("1292.25"),
    ("paymob-eg", "commission"): Decimal("12.90"),
    ("ourvoice-sn", "credit"): Decimal("50000"),
}
ZONES = {"paymob-eg": ZoneInfo("Africa/Cairo")}  # the others report in UTC
FUNDING = {"muda-ug": {"BANK_DEPOSIT"}, "paymob-eg": {"card", "accept_balance"}}
KIND_OF = {
    "missing_row": "MISSING_ROW",
    "duplicate_row": "DUPLICATE_ROW",
    "fee_netted": "FEE_NETTED",
    "reversal": "REVERSAL",
    "next_day": "POSTED_NEXT_DAY",
}
BALANCES_QUERY = "{ balances { complete } }"


# ----------------------------------------------------------------------------- the oracle


def zone_of(tenant: str) -> ZoneInfo:
    return ZONES.get(tenant, ZoneInfo("UTC"))


def bounds(day: date, zone: ZoneInfo) -> tuple[float, float]:
    start = datetime(day.year, day.month, day.day, tzinfo=zone)
    following = day + timedelta(days=1)
    end = datetime(following.year, following.month, following.day, tzinfo=zone)
    return start.timestamp(), end.timestamp()


def in_day(at: float, day: date, zone: ZoneInfo) -> bool:
    start, end = bounds(day, zone)
    return start <= at < end


def effect(m: Movement) -> Decimal:
    return (m.amount if m.credit else -m.amount) - m.fee


def truth(month: Month, tenant: str, key: str, at: float) -> Decimal:
    """The balance's true value at `at`: the seed, every succeeded movement (a reversed
    one back an hour later), Our Voice's top-ups when credited."""
    value = SEEDS[(tenant, key)]
    for m in month.movements.get(tenant, ()):
        if m.balance == key and m.status == "success" and m.at <= at:
            value += effect(m)
            if m.fault == "reversal" and m.at + REVERSAL_AFTER <= at:
                value -= -m.amount if not m.credit else m.amount
    if tenant == "ourvoice-sn":
        for t in month.topups:
            credited = {None: t.at, "posts-next-day": t.at + DAY}.get(t.fault)
            if credited is not None and credited <= at:
                value += t.amount
    return value


@dataclass(frozen=True)
class Row:
    movement: Movement
    at: float
    amount: Decimal


def listed(month: Month, tenant: str, key: str) -> list[Row]:
    """The provider's rows of a balance, as each fault (issue #28, item 4) corrupts them."""
    rows = []
    for m in month.movements.get(tenant, ()):
        if m.balance != key or not m.listed or m.fault == "missing_row":
            continue
        at = m.at + DAY if m.fault == "next_day" else m.at
        amount = m.amount - m.fee if m.fault == "fee_netted" else m.amount
        rows += [Row(m, at, amount)] * (2 if m.fault == "duplicate_row" else 1)
    return rows


def faults_on(month: Month, tenant: str, key: str, day: date) -> list[tuple[str, Decimal]]:
    """Each fault's part in this day's difference (closing − expected closing)."""
    zone = zone_of(tenant)
    found = []
    for m in month.movements.get(tenant, ()):
        if m.balance != key or m.fault is None:
            continue
        if m.fault == "next_day":
            if in_day(m.at, day, zone):
                found.append(("next_day", effect(m)))
            if in_day(m.at + DAY, day, zone):
                found.append(("next_day", -effect(m)))
        elif in_day(m.at, day, zone):
            part = {
                "missing_row": effect(m),
                "duplicate_row": -effect(m),
                "fee_netted": m.fee,
                "reversal": m.amount if not m.credit else -m.amount,
            }[m.fault]
            found.append((m.fault, part))
    return found


@dataclass(frozen=True)
class Expected:
    opening: Decimal
    closing: Decimal
    credits: Decimal | None
    debits: Decimal | None
    fees: Decimal | None
    unlisted: Decimal  # the true movements of the direction the statement does not list
    faults: list[tuple[str, Decimal]]


def expected(month: Month, tenant: str, key: str, day: date) -> Expected:
    zone = zone_of(tenant)
    start, end = bounds(day, zone)
    rows = [r for r in listed(month, tenant, key) if start <= r.at < end]
    done = [r for r in rows if r.movement.status == "success"]
    credits = sum((r.amount for r in done if r.movement.credit), Decimal(0))
    debits = sum((r.amount for r in done if not r.movement.credit), Decimal(0))
    fees = sum((r.movement.fee for r in done), Decimal(0))
    unlisted = sum(
        (
            effect(m)
            for m in month.movements.get(tenant, ())
            if m.balance == key and not m.listed and m.status == "success" and start <= m.at < end
        ),
        Decimal(0),
    )
    return Expected(
        truth(month, tenant, key, start),
        truth(month, tenant, key, end),
        credits,
        debits,
        fees,
        unlisted,
        faults_on(month, tenant, key, day),
    )


def check_statement(got: BalanceClose, want: Expected, coverage: StatementCoverage) -> str:
    """'' when `got` is what the definitions say, else what differs; 'caught', 'clean' or
    'unprovable' is returned by `judge`."""
    assert got.opening == want.opening, (got, want)
    assert got.closing == want.closing, (got, want)
    if coverage is StatementCoverage.NONE:
        assert got.status.value == "BALANCE_DELTA_ONLY", got
        assert got.unexplained is None and got.credits is None, got
        return "clean"
    assert got.fees == want.fees, (got, want)
    if coverage is not StatementCoverage.DEBITS:
        assert got.credits == want.credits, (got, want)
    if coverage is not StatementCoverage.CREDITS:
        assert got.debits == want.debits, (got, want)
    assert got.expected_closing == want.opening + want.credits - want.debits - want.fees  # type: ignore[operator]
    if not want.faults:  # a clean day: zero false alarms
        assert not got.findings, got
        assert got.unexplained == 0, got
        if coverage is StatementCoverage.BOTH:
            assert got.status.value == "RECONCILED", got
        else:  # the listed direction explains it all (RECONCILED), or the other moved
            status = "BALANCE_DELTA_ONLY" if want.unlisted else "RECONCILED"
            assert got.status.value == status, got
            unlisted = (
                got.unlisted_credits
                if coverage is StatementCoverage.DEBITS
                else (-got.unlisted_debits if got.unlisted_debits is not None else None)
            )
            assert unlisted == want.unlisted, (got, want)
        return "clean"
    ((fault, part),) = want.faults  # the generator's rule: one fault per balance and day
    shows = part < 0 if coverage is StatementCoverage.DEBITS else part > 0
    provable = (
        coverage is StatementCoverage.BOTH
        or fault == "duplicate_row"
        or (want.unlisted == 0 and shows)
    )
    if not provable:
        assert got.status.value in ("BALANCE_DELTA_ONLY", "UNEXPLAINED"), got
        return "unprovable"
    assert got.status.value == "UNEXPLAINED", (fault, got)
    assert got.unexplained == part, (fault, part, got)
    assert [f.kind.value for f in got.findings] == [KIND_OF[fault]], (fault, got)
    return "caught"


# ----------------------------------------------------------------------------- the replay


async def replay(month: Month, sim: Simulator, clock: FakeClock, gw: GatewayClient) -> None:
    for tenant, movements in month.movements.items():
        for movement in movements:
            sim.state.books.post(tenant, movement)
    events: list[tuple[float, int, TopUp | None]] = []
    hour = month.start - 3 * 3600
    while hour <= month.end + 27 * 3600:
        events.append((hour, 0, None))
        hour += 3600
    for t in month.topups:  # readings around each top-up, and where a late one lands
        for at in (t.at, t.at + DAY):
            events += [(at - 360, 0, None), (at + 240, 0, None)]
        events.append((t.at, 1, t))
    recorder = gw.app.state.recorder
    ourvoice: Any = sim.fakes["ourvoice"]
    for at, _, top in sorted(set(events), key=lambda e: (e[0], e[1])):
        clock.now = at
        if top is None:
            assert (await gw.query(BALANCES_QUERY))["data"]["balances"]["complete"]
            await recorder.flush()
            continue
        if top.fault:
            ourvoice.topup_faults["ourvoice-sn"] = top.fault
        else:
            ourvoice.topup_faults.pop("ourvoice-sn", None)
        result = await gw.query(
            "mutation($input: TopUpInput!) { topUp(input: $input) { __typename } }",
            topup(top.reference, amount=str(top.amount), paymentReference=top.reference),
        )
        assert result["data"]["topUp"]["__typename"] == "TopUpSucceeded", result


DAILY_CLOSE = """query($date: Date!) { dailyClose(date: $date) { account { id } day zone
  statements { balanceId status opening closing credits debits fees expectedClosing
               unexplained unlistedCredits unlistedDebits findings { kind amount } }
  topUps { reference status } unjournaledCredits { rowId amount } } }"""


def amount(value: Decimal | None) -> str | None:
    return None if value is None else format(value, "f")


async def same_figures_everywhere(
    gw: GatewayClient,
    settings: Any,
    transport: httpx.AsyncBaseTransport,
    clock: FakeClock,
    closes: dict[tuple[str, date], AccountClose],
) -> None:
    """The GraphQL field and the CSV say what the service said; a second replica on the
    same database answers the same CSV bytes."""
    async with running_gateway(settings, transport, clock) as other:
        for day in days():
            data = (await gw.query(DAILY_CLOSE, {"date": day.isoformat()}))["data"]
            for found in data["dailyClose"]:
                mine = closes[(found["account"]["id"], day)]
                assert found["zone"] == mine.zone and found["day"] == day.isoformat()
                assert [
                    (s["balanceId"], s["status"], s["unexplained"], s["closing"])
                    for s in found["statements"]
                ] == [
                    (s.balance_id, s.status.value, amount(s.unexplained), amount(s.closing))
                    for s in mine.statements
                ]
                assert [(m["reference"], m["status"]) for m in found["topUps"]] == [
                    (m.reference, m.status.value) for m in mine.topups
                ]
            params = {"date": day.isoformat(), "accountIds": ",".join(ACCOUNTS)}
            first = await gw.http.get("/reports/daily-close.csv", params=params)
            second = await other.http.get("/reports/daily-close.csv", params=params)
            assert first.status_code == second.status_code == 200
            assert first.headers["content-type"] == "text/csv; charset=utf-8"
            assert first.content == second.content
            rows = list(csv.reader(io.StringIO(first.text)))
            assert rows == csv_rows([closes[(a, day)] for a in ACCOUNTS])
            assert first.text.endswith("\r\n")


def days() -> list[date]:
    return [(START + timedelta(days=n)).date() for n in range(DAYS)]


async def test_a_generated_month_every_fault_caught_and_no_false_alarm() -> None:
    month = generate(seed=28)
    clock = FakeClock(month.start - 3 * 3600)
    sim = create_simulator(SimState(clock=clock))
    settings = demo_settings()
    settings = dataclasses.replace(settings, accounts={a: settings.accounts[a] for a in ACCOUNTS})
    transport = httpx.ASGITransport(app=sim.app)
    outcomes: Counter[tuple[str, str]] = Counter()
    async with running_gateway(settings, transport, clock) as gw:
        await replay(month, sim, clock, gw)
        closing = gw.app.state.daily_close
        closes: dict[tuple[str, date], AccountClose] = {}
        for day in days():
            for found in await closing.close(day, list(ACCOUNTS)):
                assert found.problem is None, found
                closes[(found.account_id, day)] = found
        for (tenant, key), (balance_id, coverage) in BALANCES.items():
            for day in days():
                statements = {s.balance_id: s for s in closes[(tenant, day)].statements}
                want = expected(month, tenant, key, day)
                verdict = check_statement(statements[balance_id], want, coverage)
                for fault, _ in want.faults:
                    outcomes[(fault, verdict)] += 1
        # Top-ups: MATCHED, UNMATCHED (never posted) or LATE (posted a day late).
        wanted = {None: "MATCHED", "never-posts": "UNMATCHED", "posts-next-day": "LATE"}
        matched = {m.reference: m.status.value for found in closes.values() for m in found.topups}
        in_month = [t for t in month.topups if t.at < month.end]
        assert matched == {t.reference: wanted[t.fault] for t in in_month}
        for t in in_month:
            outcomes[(t.fault or "clean top-up", wanted[t.fault])] += 1
        # Funding rows with no journal entry are listed, on the day they are dated.
        for tenant, types in FUNDING.items():
            for day in days():
                rows = {
                    r.movement.id
                    for key in ("available", "UGX")
                    for r in listed(month, tenant, key)
                    if r.movement.kind in types
                    and r.movement.status == "success"
                    and in_day(r.at, day, zone_of(tenant))
                }
                got = {c.row_id for c in closes[(tenant, day)].unjournaled}
                assert got == {f"{tenant}:{i}" for i in rows}, (tenant, day)
        assert all(not c.unjournaled for (a, _), c in closes.items() if a == "ourvoice-sn")
        await same_figures_everywhere(gw, settings, transport, clock, closes)
    # Every kind of fault was injected, and caught, somewhere it is provable.
    for fault in (*KIND_OF,):
        assert outcomes[(fault, "caught")] >= 1, outcomes
    assert outcomes[("never-posts", "UNMATCHED")] >= 1, outcomes
    assert outcomes[("posts-next-day", "LATE")] >= 1, outcomes
    print(sorted(outcomes.items()))
