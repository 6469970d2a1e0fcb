"""Validation results cached on the query text.

Strawberry's `ValidationCache` keys an LRU on the parsed document, and hashing a document
walks its whole syntax tree on every request (about 200 node hashes for the demo query).
Here the key is the query text and the rules: the same text always parses to the same
document (parse options are fixed per schema), and one cache belongs to one schema.
"""

from __future__ import annotations

from collections.abc import Iterator

from graphql import GraphQLError
from strawberry.extensions import SchemaExtension

from gateway._compat.strawberry import core_schema, validate_document

Key = tuple[str, tuple[type, ...]]


class ValidationResults:
    """A bounded map from (query text, rules) to validation errors; oldest dropped first."""

    def __init__(self, max_entries: int) -> None:
        self.max_entries = max_entries
        self._results: dict[Key, list[GraphQLError]] = {}

    def get(self, key: Key) -> list[GraphQLError] | None:
        return self._results.get(key)

    def put(self, key: Key, errors: list[GraphQLError]) -> None:
        if len(self._results) >= self.max_entries:
            del self._results[next(iter(self._results))]
        self._results[key] = errors


class TextValidationCache(SchemaExtension):
    def __init__(self, results: ValidationResults) -> None:
        super().__init__()
        self.results = results

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        rules = tuple(context.validation_rules)
        key = (context.query, rules) if context.query is not None else None
        errors = self.results.get(key) if key is not None else None
        if errors is None:
            assert context.graphql_document is not None  # parsed before validation
            errors = validate_document(core_schema(context.schema), context.graphql_document, rules)
            if key is not None:
                self.results.put(key, errors)
        context.pre_execution_errors = errors
        yield
