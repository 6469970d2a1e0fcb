"""One operation run as a stream of results, as both modes of `/graphql/stream` run it
(`events.py`: its own connection; `single_connection.py`: a reservation's): the document
resolved as on `/graphql` (trusted documents, persisted queries), a mutation refused, a
subscription within the client's `[live]` limits."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Mapping
from typing import Any

from graphql import OperationType
from starlette.requests import Request
from strawberry.types.graphql import OperationType as StrawberryOperation

from gateway.access import Principal
from gateway.schema.context import Context
from gateway.server.endpoint import GraphQLEndpoint, shape_of
from gateway.server.refused import Refused
from gateway.services.live import BalanceWatch

STREAMED = (StrawberryOperation.QUERY, StrawberryOperation.SUBSCRIPTION)


async def stream_of(
    endpoint: GraphQLEndpoint,
    live: BalanceWatch,
    request: Request,
    principal: Principal,
    payload: Mapping[str, Any],
) -> tuple[Context, AsyncGenerator[Any, None]]:
    """The operation's context and its results (a query: one result, then the end)."""
    document, _ = await endpoint.documents.resolve(payload, principal)
    operation_name = payload.get("operationName")
    operation = shape_of(document, operation_name, endpoint.limits.max_tokens).operation
    if operation == OperationType.MUTATION:
        raise Refused(400, "A mutation does not stream: POST it to /graphql.")
    if operation == OperationType.SUBSCRIPTION:
        live.check(principal.name)  # refused here, before the stream starts
    context = endpoint.context_for(request, principal, operation_name)
    context.live = live
    results = await endpoint.graphql.schema.stream(
        document,
        variable_values=payload.get("variables"),
        context_value=context,
        operation_name=operation_name,
        allowed_operation_types=STREAMED,
    )
    return context, results
