"""Strawberry internals the schema builds on (held to 0.341.x in pyproject.toml).

- `ExecutionContextBase`: the execution context Strawberry hands graphql-core, not
  exported; `schema/execution/fast_completion.py` subclasses it.
- `validate_document`: Strawberry's validation with its own rules added, not exported;
  the text-keyed validation cache calls it.
- `core_schema()`: the graphql-core schema behind a Strawberry schema (`schema._schema`).
"""

from __future__ import annotations

import strawberry
from graphql import GraphQLSchema
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext as ExecutionContextBase
from strawberry.schema.schema import validate_document

__all__ = ["ExecutionContextBase", "core_schema", "validate_document"]


def core_schema(schema: strawberry.Schema) -> GraphQLSchema:
    core: GraphQLSchema = schema._schema
    return core
