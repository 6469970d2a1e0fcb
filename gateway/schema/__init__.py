"""The GraphQL schema: `build_schema(development=…)` and the SDL printer."""

from __future__ import annotations

import strawberry
from strawberry.extensions import (
    DisableIntrospection,
    ParserCache,
    SchemaExtension,
    ValidationCache,
)
from strawberry.printer import print_schema
from strawberry.schema.config import StrawberryConfig

from gateway.schema.errors import CodedErrors
from gateway.schema.query import Query
from gateway.schema.scalars import SCALAR_MAP


def build_schema(*, development: bool = False) -> strawberry.Schema:
    extensions: list[type[SchemaExtension] | object] = [
        lambda: ParserCache(maxsize=512),
        lambda: ValidationCache(maxsize=512),
        CodedErrors,
    ]
    if not development:
        extensions.append(DisableIntrospection)
    return strawberry.Schema(
        query=Query,
        extensions=extensions,  # type: ignore[arg-type]
        config=StrawberryConfig(scalar_map=SCALAR_MAP),
    )


def sdl() -> str:
    """The schema as SDL, as committed in `schema.graphql`."""
    return print_schema(build_schema()) + "\n"
