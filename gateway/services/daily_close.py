"""The daily close, as pure functions: balance readings + the provider's own rows + the
top-up journal + one day in a zone → a statement per balance and the day's top-ups matched.

Definitions (docs/dashboard.md, "The daily close", says the same for readers):

- **The day** is a calendar day of the account's `reporting_timezone`, from its midnight
  (included) to the next (excluded), DST changes included (`day_of`).
- **opening**: the last reading of the balance's available amount at or before the day's
  start; **closing**: the last at or before its end — a reading taken exactly at midnight is
  both one day's closing and the next day's opening. The demo's made-up readings are no
  readings. A day whose opening or closing reading is more than `MAX_GAP_SECONDS` older
  than its edge, or that is not over, is INCOMPLETE (what is missing is said).
- **movements**: the provider's rows of this balance dated inside the day, as the
  transaction history maps them: a SUCCEEDED row moves money — a credit adds its amount,
  a debit takes it, and its fee is taken either way; a row of any other status (pending,
  failed, refunded, unknown) moves nothing and is counted apart as `pending` when PENDING.
- **expected closing** = opening + credits − debits − fees; **unexplained** = closing −
  expected closing, beyond what the statement does not claim to list: where it lists one
  direction only, a difference in the other direction is that direction's movements "not in
  any statement" (`unlisted_credits` / `unlisted_debits`), not a fault.
- **status**: INCOMPLETE when a reading or the statement is missing; else UNEXPLAINED when
  anything is unexplained or a finding was made (a duplicated row); else
  BALANCE_DELTA_ONLY when the provider publishes no statement, or lists one direction only
  and the other direction moved (`unlisted_*` not zero); else RECONCILED.
- **findings**: what a difference most likely is, tried in this order on what remains of it
  once duplicates are set aside — a row of the next day of exactly that effect
  (POSTED_NEXT_DAY; on the next day, a row whose effect the day before missed), a credit's
  fee (FEE_NETTED), a row's amount come back (REVERSAL), else MISSING_ROW — each kind tried
  on every row of the day before the next kind.

Top-ups: each journal entry of the day (succeeded or pending) is MATCHED to a row of the
provider that carries its reference or id and amount, or — where the provider publishes no
statement — to a rise of the readings: first the rise across its own time, then the first
later rise big enough up to the end of the next day; credited on a later day than its own
it is LATE; with nothing, UNMATCHED. Funding rows (`funding_types`) and rises no entry
claims are listed as credits with no journal entry.
"""

from __future__ import annotations

import asyncio
import csv
import io
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal, localcontext
from enum import Enum
from itertools import pairwise
from zoneinfo import ZoneInfo

from gateway.clock import Clock
from gateway.config.accounts import AccountConfig
from gateway.domain import (
    EXACT,
    AccountBalance,
    AssetKind,
    Direction,
    StatementCoverage,
    Transaction,
    TransactionFilter,
    TransactionStatus,
)
from gateway.errors import ClientError, UpstreamError
from gateway.providers.loading import spec
from gateway.services.balances import BalanceService
from gateway.services.history import SqlHistory
from gateway.services.journal import Journal
from gateway.services.topups import journal_entry
from gateway.services.transactions import TransactionService

MAX_GAP_SECONDS = 3600.0
DAY_TEXT = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")  # YYYY-MM-DD, nothing else
FIRST_DAY, LAST_DAY = date(1970, 1, 1), date(2099, 12, 31)  # as DateTime's 1970–2100
MAX_STATEMENT_PAGES = 60  # three days of Paymob's 50-row pages: 3,000 rows
ZERO = Decimal(0)


class CloseStatus(Enum):
    RECONCILED = "RECONCILED"
    UNEXPLAINED = "UNEXPLAINED"
    INCOMPLETE = "INCOMPLETE"
    BALANCE_DELTA_ONLY = "BALANCE_DELTA_ONLY"


class FindingKind(Enum):
    DUPLICATE_ROW = "DUPLICATE_ROW"
    POSTED_NEXT_DAY = "POSTED_NEXT_DAY"
    FEE_NETTED = "FEE_NETTED"
    REVERSAL = "REVERSAL"
    MISSING_ROW = "MISSING_ROW"


class MatchStatus(Enum):
    MATCHED = "MATCHED"
    UNMATCHED = "UNMATCHED"
    LATE = "LATE"


@dataclass(frozen=True)
class Day:
    day: date
    zone: ZoneInfo
    start: datetime  # UTC
    end: datetime  # UTC, excluded

    def holds(self, moment: datetime | None) -> bool:
        return moment is not None and self.start <= moment < self.end

    def shifted(self, days: int) -> Day:
        return day_of(self.day + timedelta(days=days), self.zone)


def parse_day(text: str) -> date:
    """A report's day as a client writes it: `YYYY-MM-DD` (ASCII digits, no week or
    ordinal forms), a real calendar day from 1970-01-01 to 2099-12-31; else a ClientError
    that says so."""
    try:
        day = date.fromisoformat(text) if DAY_TEXT.fullmatch(text) else None
    except ValueError:
        day = None
    if day is None:
        raise ClientError(
            f"{text[:40]!r} is not a calendar day: write YYYY-MM-DD, e.g. 2025-04-30."
        )
    return in_range(day)


def in_range(day: date) -> date:
    if not FIRST_DAY <= day <= LAST_DAY:
        raise ClientError(f"A day from {FIRST_DAY} to {LAST_DAY}, not {day}.")
    return day


def day_of(day: date, zone: ZoneInfo) -> Day:
    """The day's instants: a midnight that a DST change skips starts the day at the
    first instant that exists (zoneinfo's fold=0 reading)."""

    def midnight(d: date) -> datetime:
        return datetime.combine(d, time(0), zone).astimezone(UTC)

    return Day(day, zone, midnight(day), midnight(day + timedelta(days=1)))


def local_day(moment: datetime, zone: ZoneInfo) -> date:
    return moment.astimezone(zone).date()


@dataclass(frozen=True)
class Reading:
    """One recorded value of a balance's available amount (a history point)."""

    at: datetime
    amount: Decimal


@dataclass(frozen=True)
class BalanceRef:
    """What the close needs to know of a balance: its id, and what places a row on it."""

    id: str
    account_id: str
    currency: str
    kind: AssetKind
    code: str
    country: str | None = None

    def places(self, row: Transaction) -> bool:
        """The row moved this balance: the same asset (kind and code) and, where both say
        one, the same country (a Magma corridor)."""
        asset = row.asset
        if asset is None or asset.kind is not self.kind or asset.code != self.code:
            return False
        row_country = row.country.code if row.country else None
        return row_country is None or self.country is None or row_country == self.country


@dataclass(frozen=True)
class TypeTotal:
    type: str
    direction: Direction | None
    rows: int
    amount: Decimal
    fees: Decimal


@dataclass(frozen=True)
class Finding:
    kind: FindingKind
    amount: Decimal  # the part of the difference it accounts for (closing − expected)
    row_id: str | None
    note: str


@dataclass(frozen=True)
class BalanceClose:
    balance_id: str
    account_id: str
    currency: str
    day: date
    zone: str
    coverage: StatementCoverage
    status: CloseStatus
    opening: Decimal | None
    opening_at: datetime | None
    closing: Decimal | None
    closing_at: datetime | None
    credits: Decimal | None  # None: the statement does not list this direction
    debits: Decimal | None
    fees: Decimal | None
    pending: Decimal | None
    expected_closing: Decimal | None
    unexplained: Decimal | None
    unlisted_credits: Decimal | None = None  # "credits not in any statement"
    unlisted_debits: Decimal | None = None
    by_type: tuple[TypeTotal, ...] = ()
    missing: tuple[str, ...] = ()
    findings: tuple[Finding, ...] = ()
    undirected_rows: int = 0  # rows that say no direction (a Muda SWAP): listed, not counted

    @property
    def delta(self) -> Decimal | None:
        if self.opening is None or self.closing is None:
            return None
        return self.closing - self.opening


@dataclass(frozen=True)
class TopUpMatch:
    transaction_id: str
    balance_id: str
    reference: str | None
    amount: Decimal
    at: datetime
    journal_status: TransactionStatus
    status: MatchStatus
    credited_at: datetime | None = None
    evidence: str | None = None  # the row's id, or "rise"


@dataclass(frozen=True)
class UnjournaledCredit:
    balance_id: str
    at: datetime
    amount: Decimal
    row_id: str | None  # None: a rise of the readings


# ----------------------------------------------------------------------------- statements


def effect(row: Transaction) -> Decimal:
    """What a row does to its balance, as defined above (nothing unless SUCCEEDED)."""
    if row.status is not TransactionStatus.SUCCEEDED or row.direction is None:
        return ZERO
    amount = row.amount.amount if row.direction is Direction.CREDIT else -row.amount.amount
    return amount - (row.fee.amount if row.fee is not None else ZERO)


def _edge(readings: Sequence[Reading], at: datetime) -> Reading | None:
    found = None
    for reading in readings:
        if reading.at > at:
            break
        found = reading
    return found


@dataclass
class _Tally:
    credits: Decimal = ZERO
    debits: Decimal = ZERO
    fees: Decimal = ZERO
    pending: Decimal = ZERO
    undirected: int = 0
    duplicates: list[tuple[Transaction, Decimal]] = field(default_factory=list)
    types: dict[tuple[str, Direction | None], list[Decimal]] = field(default_factory=dict)

    @property
    def expected_change(self) -> Decimal:
        return self.credits - self.debits - self.fees


def _tally(rows: Sequence[Transaction]) -> _Tally:
    tally = _Tally()
    seen: set[str] = set()
    for row in rows:
        if row.id in seen:
            tally.duplicates.append((row, effect(row)))
        seen.add(row.id)
        if row.direction is None:
            tally.undirected += 1
            continue
        if row.status is TransactionStatus.PENDING:
            tally.pending += row.amount.amount
        if row.status is not TransactionStatus.SUCCEEDED:
            continue
        fee = row.fee.amount if row.fee is not None else ZERO
        if row.direction is Direction.CREDIT:
            tally.credits += row.amount.amount
        else:
            tally.debits += row.amount.amount
        tally.fees += fee
        totals = tally.types.setdefault((row.type, row.direction), [ZERO, ZERO, ZERO])
        totals[0] += 1
        totals[1] += row.amount.amount
        totals[2] += fee
    return tally


@dataclass(frozen=True)
class _Raw:
    opening: Reading | None
    closing: Reading | None
    tally: _Tally
    missing: tuple[str, ...]
    rest: Decimal | None  # the difference once duplicates and unlisted movements are set aside
    unlisted: Decimal  # closing − expected that the unlisted direction accounts for


def _raw(
    day: Day,
    readings: Sequence[Reading],
    rows: Sequence[Transaction] | None,
    coverage: StatementCoverage,
    now: datetime,
) -> _Raw:
    gap = timedelta(seconds=MAX_GAP_SECONDS)
    opening = _edge(readings, day.start)
    closing = _edge(readings, min(day.end, now))
    missing = []
    if opening is None or opening.at < day.start - gap:
        missing.append("opening: no balance reading in the hour before the day began")
    if now < day.end:
        missing.append("closing: the day is not over")
    elif closing is None or closing.at < day.end - gap:
        missing.append("closing: no balance reading in the last hour of the day")
    tally = _tally([r for r in rows or () if day.holds(r.created_at)])
    rest: Decimal | None = None
    unlisted = ZERO
    if opening is not None and closing is not None and coverage is not StatementCoverage.NONE:
        with_duplicates = closing.amount - (opening.amount + tally.expected_change)
        rest = with_duplicates + sum((e for _, e in tally.duplicates), ZERO)
        if (coverage is StatementCoverage.DEBITS and rest > 0) or (
            coverage is StatementCoverage.CREDITS and rest < 0
        ):
            unlisted, rest = rest, ZERO
    return _Raw(opening, closing, tally, tuple(missing), rest, unlisted)


def _classify(
    rest: Decimal,
    day_rows: Sequence[Transaction],
    next_rows: Sequence[Transaction],
    previous_rest: Decimal | None,
) -> Finding:
    for row in next_rows:
        if effect(row) == rest:
            return Finding(
                FindingKind.POSTED_NEXT_DAY,
                rest,
                row.id,
                "moved the balance today; the statement lists it on the next day",
            )
    for row in day_rows:
        moved = effect(row)
        if moved and moved == -rest and previous_rest == moved:
            return Finding(
                FindingKind.POSTED_NEXT_DAY,
                rest,
                row.id,
                "listed today; it moved the balance the day before",
            )
    listed = [
        r for r in day_rows if r.status is TransactionStatus.SUCCEEDED and r.direction is not None
    ]
    for row in listed:
        if row.direction is Direction.CREDIT and row.fee is not None and row.fee.amount == rest:
            return Finding(
                FindingKind.FEE_NETTED,
                rest,
                row.id,
                "the row's fee is already netted out of its amount, yet listed again",
            )
    for row in listed:
        signed = row.amount.amount if row.direction is Direction.CREDIT else -row.amount.amount
        if signed == -rest:
            return Finding(
                FindingKind.REVERSAL,
                rest,
                row.id,
                "the row's amount came back; the statement still lists it as it stood",
            )
    side = "credit" if rest > 0 else "debit"
    return Finding(FindingKind.MISSING_ROW, rest, None, f"a {side} no row of the day lists")


def close_balance(
    balance: BalanceRef,
    day: Day,
    readings: Sequence[Reading],
    rows: Sequence[Transaction] | None,
    coverage: StatementCoverage,
    now: datetime,
    statement_missing: str | None = None,
) -> BalanceClose:
    """The statement of one balance for one day. `readings`: in time order, from before
    the day before to as late as known; `rows`: the provider's rows of this balance dated
    from the day before to the day after (None: no statement, or it could not be read —
    `statement_missing` says why)."""
    if rows is None and coverage is not StatementCoverage.NONE and statement_missing is None:
        statement_missing = "statement: not read"
    with_rows = rows if statement_missing is None else None
    with localcontext(EXACT):
        raw = _raw(day, readings, with_rows, coverage, now)
        day_rows = [r for r in with_rows or () if day.holds(r.created_at)]
        following = day.shifted(1)
        next_rows = [r for r in with_rows or () if following.holds(r.created_at)]
        if now < following.end:
            next_rows = [r for r in next_rows if r.created_at and r.created_at <= now]
        missing = list(raw.missing)
        if statement_missing is not None and coverage is not StatementCoverage.NONE:
            missing.append(statement_missing)
        findings = [
            Finding(FindingKind.DUPLICATE_ROW, -moved, row.id, "the statement lists it twice")
            for row, moved in raw.tally.duplicates
        ]
        if raw.rest:
            previous = _raw(day.shifted(-1), readings, with_rows, coverage, now).rest
            findings.append(_classify(raw.rest, day_rows, next_rows, previous))
        return _statement(balance, day, coverage, raw, tuple(missing), tuple(findings))


def _statement(
    balance: BalanceRef,
    day: Day,
    coverage: StatementCoverage,
    raw: _Raw,
    missing: tuple[str, ...],
    findings: tuple[Finding, ...],
) -> BalanceClose:
    opening = raw.opening.amount if raw.opening else None
    closing = raw.closing.amount if raw.closing else None
    tally = raw.tally
    listed = coverage is not StatementCoverage.NONE and not any(
        m.startswith("statement") for m in missing
    )
    credits = tally.credits if listed and coverage is not StatementCoverage.DEBITS else None
    debits = tally.debits if listed and coverage is not StatementCoverage.CREDITS else None
    expected = unexplained = None
    if listed and opening is not None and closing is not None:
        expected = opening + tally.expected_change
        unexplained = closing - expected - raw.unlisted
    if missing:
        status = CloseStatus.INCOMPLETE
    elif unexplained or findings:
        status = CloseStatus.UNEXPLAINED
    elif coverage is StatementCoverage.NONE or raw.unlisted:
        status = CloseStatus.BALANCE_DELTA_ONLY
    else:
        status = CloseStatus.RECONCILED
    return BalanceClose(
        balance_id=balance.id,
        account_id=balance.account_id,
        currency=balance.currency,
        day=day.day,
        zone=day.zone.key,
        coverage=coverage,
        status=status,
        opening=opening,
        opening_at=raw.opening.at if raw.opening else None,
        closing=closing,
        closing_at=raw.closing.at if raw.closing else None,
        credits=credits,
        debits=debits,
        fees=tally.fees if listed else None,
        pending=tally.pending if listed else None,
        expected_closing=expected,
        unexplained=unexplained,
        unlisted_credits=raw.unlisted if listed and coverage is StatementCoverage.DEBITS else None,
        unlisted_debits=-raw.unlisted if listed and coverage is StatementCoverage.CREDITS else None,
        by_type=tuple(
            TypeTotal(kind, direction, int(n), amount, fees)
            for (kind, direction), (n, amount, fees) in sorted(
                tally.types.items(), key=lambda item: (item[0][0], str(item[0][1]))
            )
        )
        if listed
        else (),
        missing=missing,
        findings=findings,
        undirected_rows=tally.undirected if listed else 0,
    )


# ----------------------------------------------------------------------------- top-ups


@dataclass
class _Rise:
    at: datetime  # the reading that shows it
    since: datetime  # the reading before
    remaining: Decimal


def _rises(readings: Sequence[Reading]) -> list[_Rise]:
    return [
        _Rise(b.at, a.at, b.amount - a.amount) for a, b in pairwise(readings) if b.amount > a.amount
    ]


def _outcome(entry: Transaction, day: Day, credited: datetime, rise: bool = False) -> MatchStatus:
    """LATE when credited on a later day than the entry's own. A rise is credited on the
    day its reading closes: a reading exactly at midnight closes the day that ends there."""
    on = closing_day(credited, day.zone) if rise else local_day(credited, day.zone)
    late = on > local_day(entry_time(entry), day.zone)
    return MatchStatus.LATE if late else MatchStatus.MATCHED


def _each_once(rows: Sequence[Transaction]) -> list[Transaction]:
    """The rows in order, a provider id listed again left out."""
    first: dict[str, Transaction] = {}
    for row in rows:
        first.setdefault(row.id, row)
    return list(first.values())


def closing_day(moment: datetime, zone: ZoneInfo) -> date:
    """The day a reading at `moment` is the closing of (at midnight: the day before)."""
    day = local_day(moment, zone)
    return day - timedelta(days=1) if moment == day_of(day, zone).start else day


def _closes(day: Day, moment: datetime) -> bool:
    return day.start < moment <= day.end


def entry_time(entry: Transaction) -> datetime:
    assert entry.created_at is not None  # journal entries always have one
    return entry.created_at


def match_topups(
    balance: BalanceRef,
    day: Day,
    entries: Sequence[Transaction],
    rows: Sequence[Transaction] | None,
    readings: Sequence[Reading],
    funding_types: frozenset[str],
    now: datetime,
) -> tuple[tuple[TopUpMatch, ...], tuple[UnjournaledCredit, ...]]:
    """The day's journal entries (of this balance: `entries` may hold others and other
    days') matched as defined above, and the day's credits no entry claims. The entries
    of the day before and the day after are matched too (and not reported): the day
    before's late credits are theirs, not credits with no entry, and a day after's own
    credit is never taken for an earlier top-up's late one."""
    before, after = day.shifted(-1), day.shifted(1)
    window = [
        e
        for e in sorted(entries, key=entry_time)
        if balance.places(e)
        and e.status in (TransactionStatus.SUCCEEDED, TransactionStatus.PENDING)
        and before.start <= entry_time(e) < after.end
    ]
    results: dict[str, TopUpMatch] = {}
    unjournaled: list[UnjournaledCredit] = []

    def found(entry: Transaction, status: MatchStatus, at: datetime | None, by: str | None) -> None:
        results[entry.id] = TopUpMatch(
            entry.id,
            balance.id,
            entry.reference,
            entry.amount.amount,
            entry_time(entry),
            entry.status,
            status,
            at,
            by,
        )

    if rows is not None:
        funding = [
            r
            for r in _each_once(rows)  # a row listed twice is one credit
            if r.direction is Direction.CREDIT and r.status is TransactionStatus.SUCCEEDED
        ]
        claimed: set[int] = set()
        for entry in window:
            for i, row in enumerate(funding):
                same = row.provider_id is not None and row.provider_id == entry.provider_id
                same = same or (row.reference is not None and row.reference == entry.reference)
                if i in claimed or not same or row.amount.amount != entry.amount.amount:
                    continue
                claimed.add(i)
                assert row.created_at is not None
                found(entry, _outcome(entry, day, row.created_at), row.created_at, row.id)
                break
            else:
                found(entry, MatchStatus.UNMATCHED, None, None)
        unjournaled = [
            UnjournaledCredit(balance.id, row.created_at, row.amount.amount, row.id)
            for i, row in enumerate(funding)
            if i not in claimed
            and row.type in funding_types
            and day.holds(row.created_at)
            and row.created_at is not None
        ]
    else:
        rises = [r for r in _rises(readings) if r.at > before.start]
        waiting = []
        for entry in window:  # first: the rise across the entry's own time
            at = entry_time(entry)
            across = next((r for r in rises if r.since <= at < r.at), None)
            if across is not None and across.remaining >= entry.amount.amount:
                across.remaining -= entry.amount.amount
                found(entry, MatchStatus.MATCHED, across.at, "rise")
            else:
                waiting.append(entry)
        for exact in (True, False):  # then: the first later rise of exactly its amount,
            for entry in list(waiting):  # else the first big enough, to the next day's end
                at, amount = entry_time(entry), entry.amount.amount
                limit = day_of(local_day(at, day.zone) + timedelta(days=1), day.zone).end
                later = next(
                    (
                        r
                        for r in rises
                        if at < r.at < limit
                        and r.at <= now
                        and (r.remaining == amount if exact else r.remaining >= amount)
                    ),
                    None,
                )
                if later is not None:
                    later.remaining -= amount
                    waiting.remove(entry)
                    found(entry, _outcome(entry, day, later.at, rise=True), later.at, "rise")
        for entry in waiting:
            found(entry, MatchStatus.UNMATCHED, None, None)
        unjournaled = [
            UnjournaledCredit(balance.id, r.at, r.remaining, None)
            for r in rises
            if r.remaining > 0 and _closes(day, r.at)
        ]
    matches = tuple(results[e.id] for e in window if day.holds(entry_time(e)))
    return matches, tuple(unjournaled)


# ----------------------------------------------------------------------------- reading it


@dataclass(frozen=True)
class AccountClose:
    account_id: str
    day: date
    zone: str
    statements: tuple[BalanceClose, ...]
    topups: tuple[TopUpMatch, ...]
    unjournaled: tuple[UnjournaledCredit, ...]
    problem: str | None = None  # why there is no statement at all (balances unreadable)


class DailyCloseService:
    """Reads what the pure functions above need — the balances (what each is), their
    readings from the history, the provider's rows around the day, the journal — and
    closes each account's day."""

    def __init__(
        self,
        accounts: Mapping[str, AccountConfig],
        balances: BalanceService,
        history: SqlHistory | None,
        transactions: TransactionService,
        journal: Journal,
        clock: Clock,
    ) -> None:
        self._accounts = accounts
        self._balances = balances
        self._history = history
        self._transactions = transactions
        self._journal = journal
        self._clock = clock

    def zone(self, account_id: str) -> ZoneInfo:
        return self._accounts[account_id].reporting_timezone

    def yesterday(self, account_id: str) -> date:
        now = datetime.fromtimestamp(self._clock(), UTC)
        return local_day(now, self.zone(account_id)) - timedelta(days=1)

    async def close(self, day: date | None, account_ids: Sequence[str]) -> list[AccountClose]:
        """Each account's close of `day` (None: of its own yesterday, in its zone)."""
        closes = (self._close(in_range(day or self.yesterday(a)), a) for a in account_ids)
        return list(await asyncio.gather(*closes))

    async def _close(self, when: date, account_id: str) -> AccountClose:
        account = self._accounts[account_id]
        day = day_of(when, account.reporting_timezone)
        zone = day.zone.key
        now = datetime.fromtimestamp(self._clock(), UTC)
        if self._history is None:
            return AccountClose(account_id, when, zone, (), (), (), "[history] is off")
        (result,) = await self._balances.balances([account_id])
        if not isinstance(result, AccountBalance):
            problem = f"balances: {result.code} ({result.message})"
            return AccountClose(account_id, when, zone, (), (), (), problem)
        rules = spec(account.provider.value)
        coverage_of = rules.coverage
        rows: list[Transaction] | None = None
        missing = None
        if coverage_of is not None:
            rows, missing = await self._rows(account_id, day)
        entries = [journal_entry(r) for r in await self._journal.records(account=account_id)]
        statements: list[BalanceClose] = []
        topups: list[TopUpMatch] = []
        unjournaled: list[UnjournaledCredit] = []
        for balance in result.balances:
            ref = BalanceRef(
                balance.id,
                account_id,
                balance.available.currency,
                balance.asset.kind,
                balance.asset.code,
                balance.country.code if balance.country else None,
            )
            readings = await self._readings(balance.id, day, now)
            coverage = coverage_of(ref.kind) if coverage_of else StatementCoverage.NONE
            mine = [r for r in rows if ref.places(r)] if rows is not None else None
            statements.append(close_balance(ref, day, readings, mine, coverage, now, missing))
            matched, loose = match_topups(
                ref, day, entries, mine, readings, rules.funding_types, now
            )
            topups += matched
            unjournaled += loose
        return AccountClose(
            account_id, when, zone, tuple(statements), tuple(topups), tuple(unjournaled)
        )

    async def _rows(self, account_id: str, day: Day) -> tuple[list[Transaction] | None, str | None]:
        flt = TransactionFilter(
            created_from=day.shifted(-1).start, created_to=day.shifted(1).end - timedelta.resolution
        )
        try:
            rows = await self._transactions.rows(account_id, flt, MAX_STATEMENT_PAGES)
        except (UpstreamError, ClientError) as exc:
            return None, f"statement: {exc.code.value} ({exc.message})"
        if rows is None:
            return None, f"statement: more than {MAX_STATEMENT_PAGES} pages around the day"
        return rows, None

    async def _readings(self, balance_id: str, day: Day, now: datetime) -> list[Reading]:
        assert self._history is not None
        since = day.shifted(-1).start.timestamp() - MAX_GAP_SECONDS
        until = min(now, day.shifted(1).end).timestamp()
        points = await self._history.window(balance_id, since, until)
        return [Reading(p.at, p.available.amount) for p in points if not p.synthetic]


# ----------------------------------------------------------------------------- the CSV

CSV_COLUMNS = (
    "date",
    "zone",
    "account",
    "balance",
    "currency",
    "coverage",
    "status",
    "opening",
    "opening_at",
    "closing",
    "closing_at",
    "credits",
    "debits",
    "fees",
    "pending",
    "expected_closing",
    "unexplained",
    "unlisted_credits",
    "unlisted_debits",
    "findings",
    "missing",
    "topups_matched",
    "topups_unmatched",
    "topups_late",
    "unjournaled_credits",
)


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, Enum):
        return str(value.value)
    return str(value)


def csv_rows(closes: Sequence[AccountClose]) -> list[list[str]]:
    """One row per balance (an account whose balances could not be read: one row saying
    why), in the accounts' order and each account's balances' order; the columns are
    `CSV_COLUMNS`, always in that order."""
    rows = [list(CSV_COLUMNS)]
    for account in closes:
        head = [account.day.isoformat(), account.zone, account.account_id]
        if account.problem is not None:
            said = {"status": "INCOMPLETE", "missing": account.problem}
            rows.append([*head, *(said.get(c, "") for c in CSV_COLUMNS[3:])])
            continue
        for s in account.statements:
            matches = Counter(m.status for m in account.topups if m.balance_id == s.balance_id)
            loose = sum(1 for c in account.unjournaled if c.balance_id == s.balance_id)
            findings = ";".join(f"{f.kind.value}:{_cell(f.amount)}" for f in s.findings)
            values: list[object] = [
                s.balance_id,
                s.currency,
                s.coverage,
                s.status,
                s.opening,
                s.opening_at,
                s.closing,
                s.closing_at,
                s.credits,
                s.debits,
                s.fees,
                s.pending,
                s.expected_closing,
                s.unexplained,
                s.unlisted_credits,
                s.unlisted_debits,
                findings,
                "; ".join(s.missing),
                matches[MatchStatus.MATCHED],
                matches[MatchStatus.UNMATCHED],
                matches[MatchStatus.LATE],
                loose,
            ]
            rows.append([*head, *(_cell(v) for v in values)])
    return rows


def csv_text(closes: Sequence[AccountClose]) -> str:
    """RFC 4180: CRLF line ends, fields quoted only when they must be."""
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerows(csv_rows(closes))
    return out.getvalue()
