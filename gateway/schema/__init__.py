"""The GraphQL schema: `build_schema(development=…)` and the SDL printer."""

from __future__ import annotations

import logging

import strawberry
from graphql import GraphQLError
from strawberry.extensions import DisableIntrospection, SchemaExtension
from strawberry.printer import print_schema
from strawberry.schema.config import StrawberryConfig
from strawberry.types import ExecutionContext

from gateway._compat.asyncio import started
from gateway._compat.graphql import settle_siblings
from gateway.config.security import RequestLimits
from gateway.schema.errors import DeferredErrors, TraceResults
from gateway.schema.execution.document_limits import DocumentLimits
from gateway.schema.execution.fast_completion import FastCompletionContext
from gateway.schema.execution.limits import limits_rule
from gateway.schema.execution.operation_choice import NamedOperation
from gateway.schema.execution.operation_stats import OperationNoted
from gateway.schema.execution.parsed_documents import ParsedDocuments, remembered
from gateway.schema.execution.validation_cache import TextValidationCache, ValidationResults
from gateway.schema.live import Subscription
from gateway.schema.query import Query
from gateway.schema.scalars import SCALAR_MAP
from gateway.schema.topup import Mutation, OneTopUpPerDocument

log = logging.getLogger("gateway.graphql")


class QuietSchema(strawberry.Schema):
    """Client mistakes are not server errors: only unexpected exceptions are logged, once,
    with their request id, by `gateway.schema.errors.coded`."""

    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        for error in errors:
            log.debug("graphql error: %s", error.message)


def build_schema(
    *, development: bool = False, limits: RequestLimits | None = None
) -> strawberry.Schema:
    limits = limits or RequestLimits()
    # No resolver left unawaited when a sibling's error nulls its parent; each sibling's
    # first step taken at once (its upstream calls leave in the request's turn).
    settle_siblings(start=started)
    operation_limits = limits_rule(limits.max_depth, limits.max_aliases)
    validated = ValidationResults(max_entries=512)
    parse = remembered(512)
    extensions: list[type[SchemaExtension] | object] = [
        # the token budget and validation's added rules: before the parse reads them
        lambda: DocumentLimits(limits.max_tokens, [operation_limits, OneTopUpPerDocument]),
        lambda: ParsedDocuments(parse),
        OperationNoted,
        lambda: TextValidationCache(validated),
        NamedOperation,  # after the cached validation result is set
        DeferredErrors,
        TraceResults,
    ]
    if not development:
        extensions.append(DisableIntrospection)
    return QuietSchema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        extensions=extensions,  # type: ignore[arg-type]
        config=StrawberryConfig(
            scalar_map=SCALAR_MAP,
            enable_experimental_incremental_execution=True,  # @defer, @stream
        ),
        execution_context_class=FastCompletionContext,
    )


def sdl() -> str:
    """The schema as SDL, as committed in `schema.graphql`."""
    return print_schema(build_schema()) + "\n"


__all__ = [
    "build_schema",
    "context",
    "errors",
    "execution",
    "scalars",
    "sdl",
]
