"""What a GraphQL document would run, read before it runs: the operation's kind (GET and
event streams refuse mutations up front, admission reserves room for mutations) and
whether it answers in parts (`@defer`/`@stream`, which need a streaming `Accept`)."""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

from graphql import (
    DirectiveNode,
    GraphQLError,
    OperationType,
    Visitor,
    get_operation_ast,
    parse,
    visit,
)

from gateway.server.admission import Kind
from gateway.server.media import EVENT_STREAM, MULTIPART
from gateway.server.refused import Refused

NOT_IN_PARTS = Refused(
    406,
    f"@defer and @stream answer in parts: Accept {MULTIPART} or {EVENT_STREAM}.",
)
MUTATION_IN_PARTS = Refused(
    400, "A mutation is answered whole: send it without @defer or @stream, accepting JSON."
)


MUTATION_OVER_GET = Refused(
    405, "A mutation never runs over GET: POST it.", headers={"Allow": "POST"}
)


class OperationShape(NamedTuple):
    operation: OperationType | None  # None: it does not parse, or names no one operation
    in_parts: bool  # it uses @defer or @stream


class _IncrementalDirectives(Visitor):
    def __init__(self) -> None:
        super().__init__()
        self.found = False

    def enter_directive(self, node: DirectiveNode, *_: Any) -> None:
        if node.name.value in ("defer", "stream"):
            self.found = True


@functools.lru_cache(maxsize=128)  # a dashboard's requests repeat their documents
def shape_of(document: str, operation_name: str | None, max_tokens: int) -> OperationShape:
    """What a document would run, and whether in parts (GET and event streams refuse
    mutations before running anything; `@defer`/`@stream` need a streaming `Accept`). A
    document that does not parse is left to GraphQL to refuse, in its own words."""
    try:
        parsed = parse(document, no_location=True, max_tokens=max_tokens)
    except GraphQLError:
        return OperationShape(None, False)
    operation = get_operation_ast(parsed, operation_name)
    directives = _IncrementalDirectives()
    if "@" in document:
        visit(parsed, directives)
    return OperationShape(None if operation is None else operation.operation, directives.found)


def kind_of(operation: OperationType | None) -> Kind:
    """Admission's word for an operation: a mutation, or anything else (a query)."""
    return "mutation" if operation == OperationType.MUTATION else "query"
