"""Parsed documents, remembered by their text and parse options (the last 512).

In place of Strawberry's `ParserCache`, for one difference: a document that does not parse
— a syntax error, more tokens than `[limits] max_tokens` — is left to Strawberry's own
parse, which runs inside the `try` that makes its error the answer's (`VALIDATION`). The
parser cache's hook runs outside it: on `/graphql` Strawberry's `execute` caught what it
raised, but a stream's did not, and on `/graphql/stream` such a document ended its stream
mid-answer with a traceback (single connection mode: its operation never answered). A
document that fails is parsed twice; one that parses, once per text.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from functools import lru_cache

from graphql import DocumentNode, GraphQLError, parse
from strawberry.extensions import SchemaExtension

Parse = Callable[..., DocumentNode]


def remembered(maxsize: int = 512) -> Parse:
    """`graphql.parse`, remembering its last `maxsize` documents (failures are not kept)."""
    return lru_cache(maxsize=maxsize)(parse)


class ParsedDocuments(SchemaExtension):
    def __init__(self, parse: Parse) -> None:
        self.parse = parse

    def on_parse(self) -> Iterator[None]:
        context = self.execution_context
        if context.graphql_document is None and context.query is not None:
            with contextlib.suppress(GraphQLError):  # Strawberry parses it again, and answers
                context.graphql_document = self.parse(context.query, **context.parse_options)
        yield
