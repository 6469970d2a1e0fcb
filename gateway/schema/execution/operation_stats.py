"""The operation a request runs, noted for its access line, metrics and span.

Read from the parsed document (a document that does not parse has none): the operation the
client named in `operationName`, else the document's only (or first) one. The name is as
the client wrote it; `log_context` cuts it and replaces control characters.
"""

from __future__ import annotations

from collections.abc import Iterator

from graphql import OperationDefinitionNode
from strawberry.extensions import SchemaExtension

from gateway import log_context


class OperationNoted(SchemaExtension):
    def on_parse(self) -> Iterator[None]:
        yield
        context = self.execution_context
        document = context.graphql_document
        if document is None:
            return
        named = getattr(context.context, "operation_name", None)
        for definition in document.definitions:
            if not isinstance(definition, OperationDefinitionNode):
                continue
            own = definition.name.value if definition.name else None
            if named is None or own == named:
                log_context.note_operation(definition.operation.value, named or own)
                return
