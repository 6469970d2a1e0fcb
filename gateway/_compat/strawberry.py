"""Strawberry internals the schema builds on (held to 0.341.x in pyproject.toml).

- `ExecutionContextBase`: the execution context Strawberry hands graphql-core, not
  exported; `schema/execution/fast_completion.py` subclasses it.
- `validate_document`: Strawberry's validation with its own rules added, not exported;
  the text-keyed validation cache calls it.
- `core_schema()`: the graphql-core schema behind a Strawberry schema (`schema._schema`).
- `resolve_info()`: graphql-core's resolve info behind a Strawberry `Info` (`_raw_info`):
  its field nodes say whether a field is streamed (`@stream`).
"""

from __future__ import annotations

from typing import Any

import strawberry
from graphql import GraphQLResolveInfo, GraphQLSchema
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext as ExecutionContextBase
from strawberry.schema.schema import validate_document

__all__ = ["ExecutionContextBase", "core_schema", "resolve_info", "validate_document"]


def core_schema(schema: strawberry.Schema) -> GraphQLSchema:
    core: GraphQLSchema = schema._schema
    return core


def resolve_info(info: strawberry.Info[Any, Any]) -> GraphQLResolveInfo[Any]:
    raw: GraphQLResolveInfo[Any] = info._raw_info
    return raw
