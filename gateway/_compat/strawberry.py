"""Strawberry internals the schema builds on (held to 0.341.x in pyproject.toml).

- `ExecutionContextBase`: the execution context Strawberry hands graphql-core, not
  exported; `schema/execution/fast_completion.py` subclasses it.
- `validate_document`: Strawberry's validation with its own rules added, not exported;
  the text-keyed validation cache calls it.
- `core_schema()`: the graphql-core schema behind a Strawberry schema (`schema._schema`).
- `resolve_info()`: graphql-core's resolve info behind a Strawberry `Info` (`_raw_info`):
  its field nodes say whether a field is streamed (`@stream`).
- `is_default_resolver()`: whether a graphql-core field's resolver is the one Strawberry
  makes for a plain attribute (it marks it `_is_default`): the planned completion reads
  such a field straight from its object.
"""

from __future__ import annotations

from typing import Any

import strawberry
from graphql import GraphQLResolveInfo, GraphQLSchema
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext as ExecutionContextBase
from strawberry.schema.schema import validate_document

__all__ = [
    "ExecutionContextBase",
    "core_schema",
    "is_default_resolver",
    "resolve_info",
    "validate_document",
]


def core_schema(schema: strawberry.Schema) -> GraphQLSchema:
    core: GraphQLSchema = schema._schema
    return core


def resolve_info(info: strawberry.Info[Any, Any]) -> GraphQLResolveInfo[Any]:
    raw: GraphQLResolveInfo[Any] = info._raw_info
    return raw


def is_default_resolver(resolve: Any) -> bool:
    return getattr(resolve, "_is_default", False) is True
