"""Transaction types and the one resolver both `Query.transactions` and
`Account.transactions` use."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated

import strawberry

from gateway import domain
from gateway.errors import ClientError, GatewayError, NotFound, Unsupported, UpstreamError
from gateway.schema.types import Account, Money, ProviderFailure
from gateway.services.topups import printable

if TYPE_CHECKING:
    from gateway.schema.context import Context

EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(2100, 1, 1, tzinfo=UTC)

strawberry.enum(domain.TransactionStatus, name="TransactionStatus")
strawberry.enum(domain.Direction, name="Direction")


@strawberry.type
class Transaction:
    """Served from the domain value itself (same field names), plus its account."""

    id: strawberry.ID
    reference: str | None
    type: str
    status: domain.TransactionStatus
    raw_status: str | None
    direction: domain.Direction | None
    amount: Money
    fee: Money | None
    payment_method: str | None
    initiator: str | None
    recipient: str | None
    created_at: datetime | None

    @strawberry.field
    def account(self, info: strawberry.Info[Context, None]) -> Account:
        account_id: str = self.account_id  # type: ignore[attr-defined]
        found = info.context.service.account(account_id)
        assert found is not None
        return Account.of(found)


@strawberry.input
class TransactionFilter:
    created_from: datetime | None = None
    created_to: datetime | None = None
    statuses: list[domain.TransactionStatus] | None = None
    types: list[str] | None = None
    reference: str | None = None

    def to_domain(self) -> domain.TransactionFilter:
        for moment in (self.created_from, self.created_to):
            if moment is not None and not EARLIEST <= moment <= LATEST:
                raise ClientError("Dates must lie between 1970 and 2100.")
        if self.created_from and self.created_to and self.created_from > self.created_to:
            raise ClientError("`createdFrom` is after `createdTo`.")
        # Both can reach a provider (Paymob's `transaction_type` / `transaction_ref`).
        if self.reference is not None and not printable(self.reference, 1, 100):
            raise ClientError("`reference` must be 1–100 printable characters, unpadded.")
        if self.types is not None and not all(printable(t, 1, 64) for t in self.types):
            raise ClientError("Each of `types` must be 1–64 printable characters, unpadded.")
        return domain.TransactionFilter(
            created_from=self.created_from,
            created_to=self.created_to,
            statuses=frozenset(self.statuses) if self.statuses is not None else None,
            types=frozenset(self.types) if self.types is not None else None,
            reference=self.reference,
        )


@strawberry.type
class PageInfo:
    has_next_page: bool
    end_cursor: str | None


@strawberry.type
class TransactionEdge:
    cursor: str
    node: Transaction


@strawberry.type
class TransactionConnection:
    edges: list[TransactionEdge]
    page_info: PageInfo
    total_count: int | None = strawberry.field(
        description="The provider's own count for the filter, where it gives one."
    )


TransactionsResult = Annotated[
    TransactionConnection | ProviderFailure, strawberry.union("TransactionsResult")
]


async def transactions_of(
    context: Context,
    account_id: str,
    flt: TransactionFilter | None,
    first: int,
    after: str | None,
) -> TransactionConnection | ProviderFailure:
    context.principal.require("transactions:read")
    info = context.visible(account_id)
    if info is None:
        raise NotFound(f"No account {account_id!r}.")
    failure: GatewayError | None = None
    if not context.transactions.supports(account_id):
        failure = Unsupported("This provider has no transaction history the gateway can read.")
    else:
        try:
            connection = await context.transactions.connection(
                account_id, (flt or TransactionFilter()).to_domain(), first, after
            )
        except UpstreamError as exc:
            failure = exc
    context.cacheable = False  # histories are cached per upstream page, not as responses
    if failure is not None:
        return ProviderFailure(
            account=Account.of(info),
            code=failure.code,
            message=failure.message,
            retryable=failure.retryable,
            retry_after_seconds=failure.retry_after_seconds,
        )
    return TransactionConnection(
        edges=[TransactionEdge(cursor=c, node=t) for c, t in connection.edges],  # type: ignore[arg-type]
        page_info=PageInfo(
            has_next_page=connection.has_next_page, end_cursor=connection.end_cursor
        ),
        total_count=connection.total,
    )
