"""Every GraphQL error leaves with `extensions.code`; unexpected ones are masked.

A `GatewayError` keeps its safe message and code. Parse and validation errors (no original
exception) are VALIDATION. Anything else is a bug: the client sees "Internal error." with
INTERNAL and the request's id (its answer's `X-Request-Id`), and the exception is logged
with that id, never returned.
`coded` runs on the final result in the HTTP view, so parse errors are covered too.
Errors a resolver deferred (`context.errors`, e.g. NOT_FOUND ids in `balances`) are added
by `DeferredErrors`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from graphql import GraphQLError
from strawberry.extensions import SchemaExtension

from gateway.errors import ErrorCode, GatewayError
from gateway.observability.log_context import new_request_id, request_id

log = logging.getLogger("gateway.graphql")


def coded(error: GraphQLError) -> GraphQLError:
    original = error.original_error
    if isinstance(original, GraphQLError):
        # A wrapped GraphQL error (a variable's bad value, a resolver's GraphQLError): the
        # code is the inner one's; the message and location the outer one's, which say
        # where ("Variable '$a' has invalid value: …") — unless the inner one is a bug.
        inner = coded(original)
        if inner.extensions and inner.extensions.get("code") == ErrorCode.INTERNAL.value:
            return inner
        return GraphQLError(
            error.message,
            nodes=error.nodes,
            source=error.source,
            positions=error.positions,
            path=error.path,
            extensions=inner.extensions,
        )
    if error.extensions and "code" in error.extensions:
        return error
    if isinstance(original, GatewayError):
        message, code = original.message, original.code.value
    elif original is None:
        message, code = error.message, ErrorCode.VALIDATION.value
    else:
        rid = request_id.get()
        if rid == "-":  # outside a request (a test calling this directly)
            rid = new_request_id()
        log.error("unexpected error (request %s)", rid, exc_info=original)
        return GraphQLError(
            "Internal error.",
            nodes=error.nodes,
            path=error.path,
            extensions={"code": ErrorCode.INTERNAL.value, "requestId": rid},
        )
    return GraphQLError(
        message,
        nodes=error.nodes,
        source=error.source,
        positions=error.positions,
        path=error.path,
        extensions={"code": code},
    )


class DeferredErrors(SchemaExtension):
    """Adds the errors resolvers deferred in `context.errors` to the result."""

    def on_operation(self) -> Iterator[None]:
        yield
        result = self.execution_context.result
        deferred = getattr(self.execution_context.context, "errors", None) or []
        if result is not None and deferred:
            result.errors = [*(result.errors or []), *deferred]


class TraceResults(SchemaExtension):
    """A traced request's trace (`context.trace`), as `extensions.trace` of its answer."""

    def get_results(self) -> dict[str, Any]:
        trace = getattr(self.execution_context.context, "trace", None)
        return {} if trace is None else {"trace": trace.as_json()}
