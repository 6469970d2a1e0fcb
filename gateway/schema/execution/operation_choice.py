"""A document with several operations runs only the one the client names.

The GraphQL spec requires an error when a document holds more than one operation and no
`operationName` says which to run; Strawberry runs the first instead — a `topUp` included.
Money must never move on a guess, so such a request is refused before anything executes.
The name the client sent comes from the request (the endpoint puts it in the context);
the validation result itself stays a pure function of the document, as its cache needs.
"""

from __future__ import annotations

from collections.abc import Iterator

from graphql import GraphQLError, OperationDefinitionNode
from strawberry.extensions import SchemaExtension


class NamedOperation(SchemaExtension):
    """Runs after validation's own result is set (so its list is extended, not replaced)."""

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        document = context.graphql_document
        named = getattr(context.context, "operation_name", None)
        if document is not None and not named:
            count = sum(isinstance(d, OperationDefinitionNode) for d in document.definitions)
            if count > 1:
                error = GraphQLError(
                    f"The document has {count} operations: say which one to run in `operationName`."
                )
                context.pre_execution_errors = [*(context.pre_execution_errors or []), error]
        yield
