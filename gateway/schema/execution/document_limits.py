"""A document's limits, set as its parsing begins: the parser's token budget and the rules
validation adds (depth and aliases, one top-up per document).

Strawberry's `MaxTokensLimiter` and `AddValidationRules` set the same from `on_operation`:
a hook whose generator — with the wrappers Strawberry makes for it — lives as long as the
operation, which for a subscription is its stream's whole life (≈ 1.8 KB an open stream
for the two: memory a wave of streams raises the process's high-water mark by). Set from
`on_parse`, they are gone once the document is parsed. Parsing always comes first, a
cached document included (Strawberry enters the parsing hooks whether or not it parses),
and this extension comes before the parse (`parsed_documents.py`), which reads the options.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from graphql import ASTValidationRule
from strawberry.extensions import SchemaExtension


class DocumentLimits(SchemaExtension):
    def __init__(self, max_tokens: int, rules: Sequence[type[ASTValidationRule]]) -> None:
        self.max_tokens = max_tokens
        self.rules = tuple(rules)

    def on_parse(self) -> Iterator[None]:
        context = self.execution_context
        context.parse_options["max_tokens"] = self.max_tokens
        context.validation_rules = (*context.validation_rules, *self.rules)
        yield
