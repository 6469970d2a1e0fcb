"""`Mutation.topUp` and its result union; at most one `topUp` per document."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any

import strawberry
from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    InlineFragmentNode,
    OperationDefinitionNode,
    ValidationRule,
)

from gateway.errors import ErrorCode, GatewayError
from gateway.schema.context import Context
from gateway.schema.refresh import refresh_balances
from gateway.schema.transactions import Transaction
from gateway.schema.types import BalanceReport
from gateway.services.topups import Pending, Rejected, Succeeded, TopUpRequest


@strawberry.input
class TopUpInput:
    account_id: strawberry.ID
    amount: Decimal
    currency: str | None = None
    payment_method: str
    payment_reference: str
    idempotency_key: str


@strawberry.type
class TopUpSucceeded:
    transaction: Transaction
    replayed: bool


@strawberry.type
class TopUpPending:
    idempotency_key: str
    message: str
    replayed: bool


@strawberry.type
class TopUpRejected:
    code: ErrorCode
    message: str
    retryable: bool
    replayed: bool


TopUpResult = Annotated[
    TopUpSucceeded | TopUpPending | TopUpRejected, strawberry.union("TopUpResult")
]


@strawberry.type
class Mutation:
    refresh_balances: BalanceReport = strawberry.mutation(
        resolver=refresh_balances,
        description="Re-read these accounts (default: every one the caller may see) from "
        "their providers and answer with the new report: one upstream read per account for "
        "every refresh asked at the same moment (within `[cache] refresh_join_seconds`), on "
        "every replica sharing the cache, and never more often than the account's quota "
        "allows (then `freshnessLimit` says so). Cached responses holding the old balances "
        "stop matching at once, and this replica's live streams are told. Needs the "
        "`balances:refresh` and `balances:read` scopes.",
    )

    @strawberry.mutation(
        description="Credit an account, at most once per idempotency key. An unknown outcome "
        "is TopUpPending, never a guess."
    )
    async def top_up(self, info: strawberry.Info[Context, None], input: TopUpInput) -> TopUpResult:
        context = info.context
        context.cacheable = False
        try:
            context.principal.require("topup:write")
            if context.visible(str(input.account_id)) is None:
                raise GatewayError(f"No account {str(input.account_id)!r}.").with_code(
                    ErrorCode.NOT_FOUND
                )
            if not context.topups.can_top_up(str(input.account_id)):
                raise GatewayError("This account cannot be topped up.").with_code(
                    ErrorCode.UNSUPPORTED
                )
        except GatewayError as exc:  # refused before anything is stored or sent
            return TopUpRejected(
                code=exc.code, message=exc.message, retryable=False, replayed=False
            )
        outcome = await context.topups.top_up(
            context.principal.name,
            TopUpRequest(
                str(input.account_id),
                input.amount,
                input.currency,
                input.payment_method,
                input.payment_reference,
                input.idempotency_key,
            ),
        )
        if isinstance(outcome, Succeeded):
            return TopUpSucceeded(transaction=outcome.transaction, replayed=outcome.replayed)  # type: ignore[arg-type]
        if isinstance(outcome, Pending):
            return TopUpPending(
                idempotency_key=outcome.idempotency_key,
                message=outcome.message,
                replayed=outcome.replayed,
            )
        assert isinstance(outcome, Rejected)
        return TopUpRejected(
            code=outcome.code,
            message=outcome.message,
            retryable=outcome.retryable,
            replayed=outcome.replayed,
        )


class OneTopUpPerDocument(ValidationRule):
    """Money moves one top-up per request: a second `topUp` (aliased or not) is refused."""

    def enter_document(self, node: DocumentNode, *_: Any) -> Any:
        fragments = {
            d.name.value: d for d in node.definitions if isinstance(d, FragmentDefinitionNode)
        }
        seen: set[str] = set()

        def count(selections: Any) -> int:
            total = 0
            for selection in selections:
                if isinstance(selection, FieldNode):
                    total += selection.name.value == "topUp"
                elif isinstance(selection, InlineFragmentNode):
                    total += count(selection.selection_set.selections)
                elif isinstance(selection, FragmentSpreadNode) and selection.name.value not in seen:
                    seen.add(selection.name.value)  # cycles are graphql-core's to report
                    fragment = fragments.get(selection.name.value)
                    total += count(fragment.selection_set.selections) if fragment else 0
            return total

        for definition in node.definitions:
            if isinstance(definition, OperationDefinitionNode):
                seen.clear()
                if count(definition.selection_set.selections) > 1:
                    self.report_error(GraphQLError("At most one topUp per request."))
        return self.BREAK
