"""Transaction types and the one resolver both `Query.transactions` and
`Account.transactions` use."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import strawberry

from gateway import domain
from gateway.domain import is_known_currency
from gateway.errors import ClientError, GatewayError, NotFound, Unsupported, UpstreamError
from gateway.observability import log_context
from gateway.schema.types import Account, Asset, Country, Money, ProviderFailure
from gateway.services.topups import is_printable

if TYPE_CHECKING:
    from gateway.schema.context import Context

strawberry.enum(domain.TransactionStatus, name="TransactionStatus")
strawberry.enum(domain.Direction, name="Direction")


@strawberry.type(
    description="One movement of money, in one shape whatever the provider. Served from the "
    "domain value itself (same field names), plus its account."
)
class Transaction:
    id: strawberry.ID = strawberry.field(
        description="`<account>:<provider id>`: globally unique and stable."
    )
    reference: str | None = strawberry.field(
        description="The client's own reference, where the provider keeps one (Muda "
        "`reference_id`, Magma `merchant_transaction_id`, Paymob `transaction_ref`, Our "
        "Voice the payment reference of the top-up)."
    )
    type: str = strawberry.field(
        description="The provider's own kind of movement: Paymob `card`, `accept_balance`, "
        "`commission_withdrawal` (moves the commission balance, not cash); Muda `PUSH` (out), "
        "`PULL` (in), `BANK_DEPOSIT` (in), `SWAP` (an exchange); Magma `payout`; Our Voice "
        "`top_up`."
    )
    status: domain.TransactionStatus
    raw_status: str | None = strawberry.field(description="The provider's own status.")
    direction: domain.Direction | None = strawberry.field(
        description="CREDIT (in) or DEBIT (out); null where the provider does not say (a swap)."
    )
    amount: Money
    fee: Money | None
    payment_method: str | None
    initiator: str | None
    recipient: str | None
    created_at: datetime | None
    provider_id: str | None = strawberry.field(description="The provider's own id.")
    counterparty: str | None = strawberry.field(
        description="The other side's account, wallet or phone."
    )
    counterparty_name: str | None = strawberry.field(
        description="The other side's name, where the provider gives it."
    )
    asset: Asset | None = strawberry.field(
        description="What moved: cash, collateral (Muda `c…` assets) or commission."
    )
    channel: str | None = strawberry.field(
        description="How it moved: Magma `mobile_money` or `airtime`, Muda's `service_name`."
    )
    country: Country | None
    completed_at: datetime | None = strawberry.field(
        description="When the provider completed it, where it says (Magma `done_at`)."
    )

    @strawberry.field
    def account(self, info: strawberry.Info[Context, None]) -> Account:
        account_id: str = self.account_id  # type: ignore[attr-defined]
        found = info.context.balance_service.account(account_id)
        assert found is not None
        return Account.of(found)


@strawberry.input(
    description="Applied exactly by the gateway, whatever the provider filtered upstream."
)
class TransactionFilter:
    created_from: datetime | None = strawberry.field(
        default=None,
        description="Without it, a provider read by date range (Magma OnePay, which alone "
        "would answer today only) is asked for the account's last `history_days` (7 by "
        "default), in windows of `history_window_days` (31): both the gateway's choice.",
    )
    created_to: datetime | None = None
    statuses: list[domain.TransactionStatus] | None = None
    types: list[str] | None = None
    reference: str | None = None
    currencies: list[str] | None = None
    channels: list[str] | None = None
    asset_kinds: list[domain.AssetKind] | None = None

    def to_domain(self) -> domain.TransactionFilter:
        if self.created_from and self.created_to and self.created_from > self.created_to:
            raise ClientError("`createdFrom` is after `createdTo`.")
        # Both can reach a provider (Paymob's `transaction_type` / `transaction_ref`).
        if self.reference is not None and not is_printable(self.reference, 1, 100):
            raise ClientError("`reference` must be 1–100 printable characters, unpadded.")
        for name, values in (("types", self.types), ("channels", self.channels)):
            if values is not None and not all(is_printable(v, 1, 64) for v in values):
                raise ClientError(f"Each of `{name}` must be 1–64 printable characters, unpadded.")
        if self.currencies is not None and not all(is_known_currency(c) for c in self.currencies):
            raise ClientError("`currencies` are ISO 4217 codes, e.g. UGX.")
        return domain.TransactionFilter(
            created_from=self.created_from,
            created_to=self.created_to,
            statuses=frozenset(self.statuses) if self.statuses is not None else None,
            types=frozenset(self.types) if self.types is not None else None,
            reference=self.reference,
            currencies=frozenset(self.currencies) if self.currencies is not None else None,
            channels=frozenset(self.channels) if self.channels is not None else None,
            asset_kinds=frozenset(self.asset_kinds) if self.asset_kinds is not None else None,
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
        log_context.stats().failures += 1
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
