"""The operation a request runs, noted for its access line, metrics and span.

Read from the parsed document (a document that does not parse has none): the operation the
client named in `operationName`, else the document's only (or first) one. The name is as
the client wrote it; `log_context` cuts it and replaces control characters.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from graphql import (
    DocumentNode,
    FloatValueNode,
    IntValueNode,
    ListValueNode,
    OperationDefinitionNode,
    StringValueNode,
    Visitor,
    print_ast,
    visit,
)
from strawberry.extensions import SchemaExtension

from gateway.observability import log_context


class OperationNoted(SchemaExtension):
    def on_parse(self) -> Iterator[None]:
        yield
        context = self.execution_context
        document = context.graphql_document
        if document is None:
            return
        log_context.stats().document = document
        named = getattr(context.context, "operation_name", None)
        for definition in document.definitions:
            if not isinstance(definition, OperationDefinitionNode):
                continue
            own = definition.name.value if definition.name else None
            if named is None or own == named:
                log_context.note_operation(definition.operation.value, named or own)
                return


class _Literals(Visitor):
    def enter_string_value(self, node: StringValueNode, *_: Any) -> StringValueNode:
        return StringValueNode(value="")

    def enter_int_value(self, node: IntValueNode, *_: Any) -> IntValueNode:
        return IntValueNode(value="0")

    def enter_float_value(self, node: FloatValueNode, *_: Any) -> IntValueNode:
        return IntValueNode(value="0")

    def enter_list_value(self, node: ListValueNode, *_: Any) -> ListValueNode:
        return ListValueNode(values=())


def without_literals(document: DocumentNode) -> str:  # for traces (`gateway.observability.tracing`)
    """The document with every literal value emptied — strings "", numbers 0, lists [] —
    input objects keeping their field names (variables' values never appear anyway)."""
    return print_ast(visit(document, _Literals()))
