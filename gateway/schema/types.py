"""GraphQL output types (contract names from DESIGN.md).

Leaf value types — `Money`, `Country`, `Asset`, `Balance`, `CurrencyTotal` — declare the
schema only: resolvers hand Strawberry the frozen domain values themselves, whose attribute
names are these types' fields (a test holds that), so nothing is copied per request.
`view()` marks that one boundary for the type checker.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated, Any, TypeVar, cast

import strawberry

from gateway import domain, log_context
from gateway.errors import ErrorCode as DomainErrorCode

if TYPE_CHECKING:
    from gateway.schema.context import Context
    from gateway.schema.transactions import TransactionFilter, TransactionsResult

# The domain enums are the GraphQL enums (registered here, so `domain` stays Strawberry-free).
strawberry.enum(domain.ProviderKind, name="Provider")
strawberry.enum(domain.Capability, name="Capability")
strawberry.enum(domain.AssetKind, name="AssetKind")
strawberry.enum(DomainErrorCode, name="ErrorCode")

V = TypeVar("V")


def view(values: Sequence[Any], as_type: type[V]) -> list[V]:
    """Domain values served as the GraphQL type with the same field names."""
    return cast(list[V], list(values))


@strawberry.type
class Money:
    amount: Decimal
    currency: str


@strawberry.type
class Country:
    code: str = strawberry.field(description="ISO 3166-1 alpha-2.")
    name: str
    dial_prefix: str | None
    currency: str | None
    raw_code: str | None = strawberry.field(
        description="The provider's own code where it is not ISO (Magma's RDC for CD)."
    )


@strawberry.type
class Asset:
    code: str
    currency: str
    kind: domain.AssetKind
    issuer: str | None


@strawberry.type
class Balance:
    id: strawberry.ID
    asset: Asset
    country: Country | None
    total: Money
    available: Money
    pending: Money | None
    updated_at: datetime | None


@strawberry.type
class Account:
    id: strawberry.ID
    provider: domain.ProviderKind
    label: str
    capabilities: list[domain.Capability]

    @classmethod
    def of(cls, info: domain.AccountInfo) -> Account:
        return cls(
            id=strawberry.ID(info.id),
            provider=info.provider,
            label=info.label,
            capabilities=list(info.capabilities),
        )

    @strawberry.field
    async def balance(self, info: strawberry.Info[Context, None]) -> AccountBalanceResult:
        info.context.principal.require("balances:read")
        (result,) = await info.context.balances([str(self.id)])
        return result_of(result)

    @strawberry.field(description="This account's history, newest first.")
    async def transactions(
        self,
        info: strawberry.Info[Context, None],
        filter: Annotated[TransactionFilter, strawberry.lazy("gateway.schema.transactions")]
        | None = None,
        first: int = 20,
        after: str | None = None,
    ) -> Annotated[TransactionsResult, strawberry.lazy("gateway.schema.transactions")]:
        from gateway.schema.transactions import transactions_of

        return await transactions_of(info.context, str(self.id), filter, first, after)


@strawberry.type(
    description="Why a balance is served stale: the failure that kept a fresh answer away."
)
class StaleReason:
    code: DomainErrorCode
    message: str
    retry_after_seconds: int | None


@strawberry.type
class AccountBalance:
    account: Account
    balances: list[Balance]
    fetched_at: datetime
    stale: bool
    stale_reason: StaleReason | None = strawberry.field(
        description="Set exactly when `stale`: the provider's failure (code and message) "
        "that this cached answer stands in for."
    )


@strawberry.type
class ProviderFailure:
    account: Account
    code: DomainErrorCode
    message: str
    retryable: bool
    retry_after_seconds: int | None


AccountBalanceResult = Annotated[
    AccountBalance | ProviderFailure, strawberry.union("AccountBalanceResult")
]


def result_of(result: domain.AccountBalanceResult) -> AccountBalance | ProviderFailure:
    if isinstance(result, domain.AccountBalance):
        return AccountBalance(
            account=Account.of(result.account),
            balances=view(result.balances, Balance),
            fetched_at=result.fetched_at,
            stale=result.stale,
            stale_reason=None
            if result.stale_reason is None
            else StaleReason(
                code=DomainErrorCode(result.stale_reason.code),
                message=result.stale_reason.message,
                retry_after_seconds=result.stale_reason.retry_after_seconds,
            ),
        )
    log_context.stats().failures += 1
    return ProviderFailure(
        account=Account.of(result.account),
        code=DomainErrorCode(result.code),
        message=result.message,
        retryable=result.retryable,
        retry_after_seconds=result.retry_after_seconds,
    )


@strawberry.type
class CurrencyTotal:
    currency: str
    kind: domain.AssetKind
    total: Money
    available: Money


@strawberry.type
class BalanceReport:
    results: list[AccountBalanceResult]
    totals: list[CurrencyTotal]
    complete: bool = strawberry.field(
        description="True when every requested account answered (stale answers included)."
    )
