"""The daily close's types and its resolver (`Query.dailyClose`): each account's day, each
balance's statement and the day's top-ups matched (gateway/services/daily_close.py)."""

from __future__ import annotations

import asyncio
from datetime import date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING

import strawberry
from graphql import GraphQLError

from gateway import domain
from gateway.errors import ErrorCode
from gateway.schema.types import Account, view
from gateway.services import daily_close as close

if TYPE_CHECKING:
    from gateway.schema.context import Context

strawberry.enum(domain.StatementCoverage, name="StatementCoverage")
strawberry.enum(close.CloseStatus, name="CloseStatus")
strawberry.enum(close.FindingKind, name="FindingKind")
strawberry.enum(close.MatchStatus, name="TopUpMatchStatus")


@strawberry.type(description="The day's succeeded rows of one type and direction.")
class TypeTotal:
    type: str
    direction: domain.Direction | None
    rows: int
    amount: Decimal
    fees: Decimal


@strawberry.type(description="What part of a difference most likely is.")
class Finding:
    kind: close.FindingKind
    amount: Decimal = strawberry.field(
        description="The part of closing − expected closing it accounts for."
    )
    row_id: str | None = strawberry.field(description="The row it points at, if one.")
    note: str


@strawberry.type(
    description="One balance's day: opening, the provider's own movements, closing, and "
    "the difference nothing explains (docs/dashboard.md, The daily close). Amounts are in "
    "`currency`; null where the day or the statement does not give them."
)
class BalanceStatement:
    balance_id: strawberry.ID
    currency: str
    coverage: domain.StatementCoverage = strawberry.field(
        description="Which directions the provider's statement lists for this balance."
    )
    status: close.CloseStatus
    opening: Decimal | None = strawberry.field(
        description="The last reading at or before the day's start."
    )
    opening_at: datetime | None
    closing: Decimal | None = strawberry.field(
        description="The last reading at or before the day's end."
    )
    closing_at: datetime | None
    credits: Decimal | None
    debits: Decimal | None
    fees: Decimal | None
    pending: Decimal | None = strawberry.field(
        description="Pending rows of the day: listed, never in the expected closing."
    )
    expected_closing: Decimal | None = strawberry.field(
        description="opening + credits − debits − fees"
    )
    unexplained: Decimal | None = strawberry.field(
        description="closing − expected closing, beyond the direction the statement does not list."
    )
    unlisted_credits: Decimal | None = strawberry.field(
        description="Money in that no statement lists (the statement lists debits only)."
    )
    unlisted_debits: Decimal | None = strawberry.field(
        description="Money out that no statement lists (the statement lists credits only)."
    )
    delta: Decimal | None = strawberry.field(description="closing − opening")
    by_type: list[TypeTotal]
    missing: list[str] = strawberry.field(description="What makes the day INCOMPLETE.")
    findings: list[Finding]
    undirected_rows: int = strawberry.field(
        description="Rows that say no direction (a Muda SWAP): listed, not counted."
    )


@strawberry.type(description="A top-up of the journal, and what shows it was credited.")
class TopUpMatch:
    transaction_id: strawberry.ID
    balance_id: strawberry.ID
    reference: str | None
    amount: Decimal
    at: datetime
    journal_status: domain.TransactionStatus
    status: close.MatchStatus
    credited_at: datetime | None
    evidence: str | None = strawberry.field(description="The provider's row id, or `rise`.")


@strawberry.type(description="Money in with no journal entry: a funding row, or a rise.")
class UnjournaledCredit:
    balance_id: strawberry.ID
    at: datetime
    amount: Decimal
    row_id: str | None = strawberry.field(description="Null: a rise of the readings.")


@strawberry.type(description="One account's day, in its reporting time zone.")
class DailyClose:
    account: Account
    day: date
    zone: str
    problem: str | None = strawberry.field(
        description="Why there are no statements at all (the balances could not be read)."
    )
    statements: list[BalanceStatement]
    top_ups: list[TopUpMatch]
    unjournaled_credits: list[UnjournaledCredit]


async def daily_close_of(
    context: Context,
    day: date | None,
    account_ids: list[strawberry.ID] | None,
    path: list[str | int],
) -> list[DailyClose]:
    context.principal.require("transactions:read")
    context.cacheable = False
    ids = context.asked_ids(account_ids)
    for account_id in ids:
        if context.visible(account_id) is None:
            context.errors.append(
                GraphQLError(
                    f"No account {account_id!r}.",
                    path=path,
                    extensions={"code": ErrorCode.NOT_FOUND.value},
                )
            )
    service = context.daily_close
    assert service is not None  # the app always builds it
    visible = [i for i in ids if context.visible(i) is not None]
    if day is not None:
        found = await service.close(day, visible)
    else:  # each account's own yesterday, as its reporting time zone has it
        each = await asyncio.gather(*(service.close(service.yesterday(i), [i]) for i in visible))
        found = [close for closes in each for close in closes]
    answer = []
    for result in found:
        info = context.visible(result.account_id)
        assert info is not None
        answer.append(
            DailyClose(
                account=Account.of(info),
                day=result.day,
                zone=result.zone,
                problem=result.problem,
                statements=view(result.statements, BalanceStatement),
                top_ups=view(result.topups, TopUpMatch),
                unjournaled_credits=view(result.unjournaled, UnjournaledCredit),
            )
        )
    return answer
