"""One operation run as a stream of results, as both modes of `/graphql/stream` run it
(`events.py`: its own connection; `single_connection.py`: a reservation's): the document
resolved as on `/graphql` (trusted documents, persisted queries), a mutation refused, a
subscription within the client's `[live]` limits, a query admitted as on `/graphql`
(`admission.py`: shed with a 503 when the gate is full), held to the request's deadline
like one on `/graphql` (past it, what is still pending ends failed with OVERLOADED) and
holding its slot until its results are closed or its answer is sent (`held_slot.py`)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Callable, Mapping
from typing import Any, NamedTuple

from graphql import OperationType
from starlette.requests import Request
from strawberry.types.graphql import OperationType as StrawberryOperation

from gateway.access import Principal
from gateway.schema.context import Context
from gateway.server.endpoint import GraphQLEndpoint
from gateway.server.open_streams import OpenStreams
from gateway.server.operation_shape import shape_of
from gateway.server.outcomes import GONE
from gateway.server.refused import Refused
from gateway.services.live import BalanceWatch

STREAMED = (StrawberryOperation.QUERY, StrawberryOperation.SUBSCRIPTION)


class Streamed(NamedTuple):
    context: Context
    results: AsyncGenerator[Any, None]
    subscription: bool  # else a query, holding an admission slot until `results` close
    # gives the slot back at once (idempotent): for results that may never be closed
    release: Callable[[], None] = lambda: None


async def stream_of(
    endpoint: GraphQLEndpoint,
    live: BalanceWatch,
    request: Request,
    principal: Principal,
    payload: Mapping[str, Any],
    open_streams: OpenStreams | None = None,
) -> Streamed:
    """The operation's context and its results (a query: one result, then the end).
    `open_streams`: a subscription on a connection of its own must find a place there."""
    document, _ = await endpoint.documents.resolve(payload, principal)
    operation_name = payload.get("operationName")
    operation = shape_of(document, operation_name, endpoint.limits.max_tokens).operation
    if operation == OperationType.MUTATION:
        raise Refused(400, "A mutation does not stream: POST it to /graphql.")
    if operation == OperationType.SUBSCRIPTION:
        if open_streams is not None:  # its own connection: one of the client's places
            open_streams.check(principal.name)
        live.check(principal.name)  # refused here, before the stream starts
        context, results = await _run(endpoint, live, request, principal, payload, document)
        return Streamed(context, results, subscription=True)
    deadline = asyncio.get_running_loop().time() + endpoint.deadline_seconds
    release = await endpoint.admit(request, "query", endpoint.deadline_seconds)
    if release is None:
        raise Refused(GONE, "The client left while its query waited for a slot.")
    try:
        context, results = await _run(endpoint, live, request, principal, payload, document)
    except BaseException:
        release()
        raise
    held = SlotHeld(results, release, deadline)
    return Streamed(context, held, subscription=False, release=release)


async def _run(
    endpoint: GraphQLEndpoint,
    live: BalanceWatch,
    request: Request,
    principal: Principal,
    payload: Mapping[str, Any],
    document: str,
) -> tuple[Context, AsyncGenerator[Any, None]]:
    operation_name = payload.get("operationName")
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


class PastDeadline(Exception):
    """A query's results were not all known by the request's deadline: its stream ends
    with what is still pending failed (`Parts.late`)."""


class SlotHeld(AsyncGenerator[Any, None]):
    """`results` up to `deadline` (then `PastDeadline`), calling `release` when closed."""

    def __init__(
        self, results: AsyncGenerator[Any, None], release: Callable[[], None], deadline: float
    ) -> None:
        self.results = results
        self.release = release
        self.deadline = deadline

    async def __anext__(self) -> Any:
        bound = asyncio.timeout_at(self.deadline)
        try:
            async with bound:
                return await self.results.__anext__()
        except TimeoutError:
            if bound.expired():
                raise PastDeadline from None
            raise

    async def asend(self, value: None) -> Any:
        return await self.results.asend(value)

    async def athrow(self, *args: Any) -> Any:
        return await self.results.athrow(*args)

    async def aclose(self) -> None:
        try:
            await self.results.aclose()
        finally:
            self.release()
