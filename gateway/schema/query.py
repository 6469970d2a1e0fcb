"""Root query: accounts, one account, the dashboard's `balances` report, countries."""

from __future__ import annotations

import datetime

import strawberry
from graphql import GraphQLError

from gateway import domain
from gateway.domain import ProviderKind
from gateway.errors import ErrorCode
from gateway.schema.context import Context
from gateway.schema.daily_close import DailyClose, daily_close_of
from gateway.schema.transactions import TransactionFilter, TransactionsResult, transactions_of
from gateway.schema.types import (
    MAX_AGE,
    Account,
    BalanceReport,
    Country,
    checked_max_age,
    view,
)


def report_of(
    info: strawberry.Info[Context, None],
    account_ids: list[strawberry.ID] | None,
    providers: list[ProviderKind] | None,
    *,
    max_age: int | None = None,
    refresh: bool = False,
) -> BalanceReport:
    """The report on the accounts asked for (default: every visible one) of `providers`;
    an unknown id is a NOT_FOUND error, and the report incomplete."""
    context = info.context
    ids = context.asked_ids(account_ids)
    missing = [i for i in ids if context.visible(i) is None]
    for account_id in missing:
        context.errors.append(
            GraphQLError(
                f"No account {account_id!r}.",
                path=info.path.as_list(),
                extensions={"code": ErrorCode.NOT_FOUND.value},
            )
        )
    wanted = [
        i
        for i in ids
        if (account := context.visible(i)) and (providers is None or account.provider in providers)
    ]
    return BalanceReport(
        account_ids=wanted, all_found=not missing, max_age=max_age, refresh=refresh
    )


@strawberry.type
class Query:
    @strawberry.field(description="Configured accounts, optionally of one provider.")
    def accounts(
        self, info: strawberry.Info[Context, None], provider: ProviderKind | None = None
    ) -> list[Account]:
        accounts = info.context.visible_accounts()
        return [Account.of(a) for a in accounts if provider is None or a.provider is provider]

    @strawberry.field(description="One account by id; null when there is no such account.")
    def account(self, info: strawberry.Info[Context, None], id: strawberry.ID) -> Account | None:
        found = info.context.visible(str(id))
        return Account.of(found) if found else None

    @strawberry.field(
        description="Balances of the given accounts (default: all), fetched concurrently. "
        "A failing account is a ProviderFailure in its place; an unknown id is a NOT_FOUND "
        f"error and makes the report incomplete. {MAX_AGE}"
    )
    async def balances(
        self,
        info: strawberry.Info[Context, None],
        account_ids: list[strawberry.ID] | None = None,
        providers: list[ProviderKind] | None = None,
        max_age_seconds: int | None = None,
    ) -> BalanceReport:
        info.context.principal.require("balances:read")
        return report_of(info, account_ids, providers, max_age=checked_max_age(max_age_seconds))

    @strawberry.field(description="One account's history, newest first, filtered and paginated.")
    async def transactions(
        self,
        info: strawberry.Info[Context, None],
        account_id: strawberry.ID,
        filter: TransactionFilter | None = None,
        first: int = 20,
        after: str | None = None,
    ) -> TransactionsResult:
        return await transactions_of(info.context, str(account_id), filter, first, after)

    @strawberry.field(
        description="Each account's daily close for `date` (a calendar day of the account's "
        "reporting time zone): per balance, opening, the provider's own movements, closing "
        "and the difference nothing explains, and the day's top-ups matched. Without "
        "`date`: each account's yesterday in its reporting time zone. Needs "
        "transactions:read. An unknown id is a NOT_FOUND error."
    )
    async def daily_close(
        self,
        info: strawberry.Info[Context, None],
        date: datetime.date | None = None,
        account_ids: list[strawberry.ID] | None = None,
    ) -> list[DailyClose]:
        return await daily_close_of(info.context, date, account_ids, info.path.as_list())

    @strawberry.field(description="Countries the gateway knows, with dial prefix and currency.")
    def countries(self) -> list[Country]:
        return view(sorted(domain.COUNTRIES.values(), key=lambda c: c.code), Country)
