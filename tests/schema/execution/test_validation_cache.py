"""Validation is cached on the query text, per schema: a document is validated once, its
errors are reported every time, and schemas with different limits never share results."""

from __future__ import annotations

from typing import Any

import strawberry
from graphql import ValidationRule

from gateway.config.security import RequestLimits
from gateway.schema import build_schema
from gateway.schema.execution.validation_cache import TextValidationCache, ValidationResults

RUNS: list[str] = []


class CountingRule(ValidationRule):
    def __init__(self, context: Any) -> None:
        super().__init__(context)
        RUNS.append("validated")


@strawberry.type
class Query:
    @strawberry.field
    def hello(self) -> str:
        return "world"


def test_a_query_text_is_validated_once_and_its_errors_reported_every_time() -> None:
    results = ValidationResults(max_entries=2)
    schema = strawberry.Schema(
        query=Query,
        extensions=[
            lambda: strawberry.extensions.AddValidationRules([CountingRule]),
            lambda: TextValidationCache(results),
        ],
    )
    RUNS.clear()
    for _ in range(3):
        assert schema.execute_sync("{ hello }").data == {"hello": "world"}
        errors = schema.execute_sync("{ nope }").errors
        assert errors and "Cannot query field 'nope'" in errors[0].message
    assert len(RUNS) == 2
    for text in ("{ a: hello }", "{ b: hello }", "{ hello }"):  # past max_entries: evicted
        schema.execute_sync(text)
    assert len(RUNS) == 5


def test_schemas_with_different_limits_do_not_share_results() -> None:
    # Invalid for both (an unknown field), so neither executes; too deep for one only.
    deep = "{ balances { results { ... on AccountBalance { balances { total { nope } } } } } }"
    shallow, roomy = build_schema(limits=RequestLimits(max_depth=3)), build_schema()
    for _ in range(2):
        for schema, too_deep in ((shallow, True), (roomy, False)):
            errors = [e.message for e in schema.execute_sync(deep).errors or []]
            assert any("Cannot query field 'nope'" in m for m in errors)
            assert any("levels deep" in m for m in errors) is too_deep
