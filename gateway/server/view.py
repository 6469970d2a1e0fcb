"""Strawberry's HTTP view, as the gateway runs it: every error coded and (in production)
without "Did you mean" suggestions, at most `max_errors` of them — in a single answer and
in every part of one answered in parts (`mask`)."""

from __future__ import annotations

import re
from typing import Any

import orjson
from graphql import GraphQLError
from starlette.requests import Request
from strawberry.asgi import GraphQL
from strawberry.http import GraphQLHTTPResponse
from strawberry.types import ExecutionResult

from gateway.observability import log_context
from gateway.schema.context import Context
from gateway.schema.errors import coded

SUGGESTION = re.compile(r"\s*Did you mean [^?]*\?")


class GatewayGraphQL(GraphQL[Context, None]):
    def __init__(self, *args: Any, development: bool, max_errors: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.development = development
        self.max_errors = max_errors

    def encode_json(self, data: object) -> bytes:
        return orjson.dumps(data)  # the same JSON as json.dumps, at a fraction of the CPU

    def mask(self, errors: list[GraphQLError]) -> list[GraphQLError]:
        """Errors as a client may see them; their codes noted in the request's stats."""
        masked = [coded(error) for error in errors[: self.max_errors]]
        if not self.development:
            for error in masked:
                error.message = SUGGESTION.sub("", error.message)
        stats = log_context.stats()
        codes = {str((e.extensions or {}).get("code")) for e in masked}
        stats.error_codes = sorted(codes.union(stats.error_codes))
        return masked

    async def process_result(
        self, request: Request, result: ExecutionResult
    ) -> GraphQLHTTPResponse:
        if result.errors:
            request.state.graphql_errors = True
            # Nothing executed (every error is the request's, none a field's): a request
            # error, which application/graphql-response+json answers 400 without `data`.
            request.state.request_error = result.data is None and all(
                error.path is None for error in result.errors
            )
            result.errors = self.mask(result.errors)
        return await super().process_result(request, result)
