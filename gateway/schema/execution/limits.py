"""Query depth and alias limits that count through fragments, each fragment measured once.

Strawberry's own limiters walk a fragment again at every spread, so a document of 20
fragments each spreading the next twice costs seconds of CPU; here every fragment's depth
and alias count are computed once and reused, so such a document is measured (and refused)
in microseconds. Aliases multiply through spreads exactly as execution would; a fragment
cycle is reported instead of followed.

Introspection (`__schema`, `__type`) is measured apart, against a budget of its own: its
size is the schema's, known and bounded, and the query every GraphQL tool sends first
(GraphiQL's, `graphql-inspector`'s: graphql-js' `getIntrospectionQuery` with every option)
nests `ofType` 15 levels deep — past the depth meant for data queries. Production turns
introspection off altogether.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
    ValidationRule,
)

INTROSPECTION_ROOTS = frozenset({"__schema", "__type"})
# The standard introspection query is 15 deep (its TypeRef fragment nests `ofType` 8
# times); a few more levels for tools that ask deeper, never unbounded (`fields { type {
# fields … } }` through a cyclic schema grows with every level).
INTROSPECTION_MAX_DEPTH = 20


@dataclass(frozen=True)
class SelectionSize:
    depth: int  # of the data fields
    aliases: int
    introspection: int = 0  # the depth of the deepest introspection field


class FragmentCycle(Exception):
    pass


class _Measure:
    def __init__(self, document: DocumentNode) -> None:
        self.fragments = {
            d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
        }
        self.done: dict[str, SelectionSize] = {}
        self.visiting: set[str] = set()

    def selection_set(self, node: SelectionSetNode | None) -> SelectionSize:
        depth, aliases, introspection = 0, 0, 0
        for selection in node.selections if node else ():
            if isinstance(selection, FieldNode):
                inner = self.selection_set(selection.selection_set)
                if selection.name.value in INTROSPECTION_ROOTS:
                    introspection = max(introspection, inner.depth + 1)
                else:
                    depth = max(depth, inner.depth + 1)
                introspection = max(introspection, inner.introspection)
                aliases += inner.aliases + (1 if selection.alias else 0)
                continue
            if isinstance(selection, InlineFragmentNode):
                inner = self.selection_set(selection.selection_set)
            elif isinstance(selection, FragmentSpreadNode):
                inner = self.fragment(selection.name.value)
            else:
                continue
            depth, aliases = max(depth, inner.depth), aliases + inner.aliases
            introspection = max(introspection, inner.introspection)
        return SelectionSize(depth, aliases, introspection)

    def fragment(self, name: str) -> SelectionSize:
        if name in self.done:
            return self.done[name]
        definition = self.fragments.get(name)
        if definition is None:
            return SelectionSize(0, 0)  # unknown fragments are graphql-core's to report
        if name in self.visiting:
            raise FragmentCycle(name)
        self.visiting.add(name)
        size = self.selection_set(definition.selection_set)
        self.visiting.discard(name)
        self.done[name] = size
        return size


def limits_rule(max_depth: int, max_aliases: int) -> type[ValidationRule]:
    class OperationLimits(ValidationRule):
        def enter_document(self, node: DocumentNode, *_: Any) -> Any:
            measure = _Measure(node)
            try:
                for definition in node.definitions:
                    if isinstance(definition, OperationDefinitionNode):
                        self._check(measure.selection_set(definition.selection_set))
            except FragmentCycle as cycle:
                self.report_error(GraphQLError(f"Fragment {cycle} spreads itself."))
            except RecursionError:
                self.report_error(GraphQLError(f"The query is more than {max_depth} levels deep."))
            return self.BREAK  # one measurement for the whole document

        def _check(self, size: SelectionSize) -> None:
            if size.introspection > INTROSPECTION_MAX_DEPTH:
                self.report_error(
                    GraphQLError(
                        f"The introspection query is {size.introspection} levels deep; at "
                        f"most {INTROSPECTION_MAX_DEPTH} are allowed."
                    )
                )
            if size.depth > max_depth:
                self.report_error(
                    GraphQLError(
                        f"The query is {size.depth} levels deep; at most {max_depth} are allowed."
                    )
                )
            if size.aliases > max_aliases:
                self.report_error(
                    GraphQLError(
                        f"The query uses {size.aliases} aliases; at most {max_aliases} are allowed."
                    )
                )

    return OperationLimits
