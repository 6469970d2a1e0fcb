"""A tool's output schema: the JSON Schema of the GraphQL `data` its document answers.

Built from the operation's selection set against the schema, as graphql-core would answer
it: `data` is an object keyed by the root fields' response names (an alias, else the
field's name), each object its selected fields — and nothing else (`additionalProperties`
false). A key the selection always returns is required (a field under `@skip`/`@include`
of a variable, or in a deferred fragment, may be missing); its value is `null` only where
the schema lets it be: a nullable type takes `null` besides its own (`"type": [T,
"null"]`), a non-null one never does. Lists are arrays; enums their values; scalars as
`gateway.schema.scalars` serializes them (`Decimal` a string of digits, `DateTime` and
`Date` strings of their `format`). A union's or an interface's value is one of its possible
types, each with the fields its fragments select on that type — `oneOf` when `__typename`
tells them apart (a `const` in each), `anyOf` otherwise.

A field's description is kept on its property, on one line. Pure: the document is one
`tool_of` has parsed and validated.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from graphql import (
    BooleanValueNode,
    DirectiveNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLEnumType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLScalarType,
    GraphQLSchema,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
    is_abstract_type,
)

from gateway.schema.scalars import DECIMAL

# JSON Schema of each scalar as the gateway serializes it; another (none today) is left
# unconstrained.
SCALARS: Mapping[str, Mapping[str, Any]] = {
    "String": {"type": "string"},
    "ID": {"type": "string"},
    "Int": {"type": "integer"},
    "Float": {"type": "number"},
    "Boolean": {"type": "boolean"},
    "Decimal": {"type": "string", "pattern": f"^{DECIMAL.pattern}$"},
    "DateTime": {"type": "string", "format": "date-time"},
    "Date": {"type": "string", "format": "date"},
}
TYPENAME = "__typename"


@dataclass
class _Key:
    """One response key of a selection on one object type: its fields' nodes (merged, as
    graphql-core merges them) and whether the answer always has it."""

    nodes: list[FieldNode] = field(default_factory=list)
    always: bool = False


def output_schema(
    operation: OperationDefinitionNode,
    fragments: Mapping[str, FragmentDefinitionNode],
    schema: GraphQLSchema,
) -> dict[str, Any]:
    """The JSON Schema of `data` for `operation` (a query or a mutation)."""
    root = schema.get_root_type(operation.operation)
    assert root is not None  # validated: the schema has the operation's root type
    return _Builder(schema, fragments).object_of(root, [operation.selection_set])


@dataclass(frozen=True)
class _Builder:
    schema: GraphQLSchema
    fragments: Mapping[str, FragmentDefinitionNode]

    def object_of(
        self, object_type: GraphQLObjectType, selections: Sequence[SelectionSetNode]
    ) -> dict[str, Any]:
        keys: dict[str, _Key] = {}
        for selection_set in selections:
            self._collect(object_type, selection_set, keys, always=True, seen=frozenset())
        properties = {name: self._field(object_type, key) for name, key in keys.items()}
        found: dict[str, Any] = {
            "type": "object",
            "properties": properties,
            "additionalProperties": False,
        }
        required = [name for name, key in keys.items() if key.always]
        if required:
            found["required"] = required
        return found

    def _collect(
        self,
        object_type: GraphQLObjectType,
        selection_set: SelectionSetNode,
        keys: dict[str, _Key],
        *,
        always: bool,
        seen: frozenset[str],
    ) -> None:
        """The response keys `selection_set` gives on `object_type`, its fragments that
        apply to that type included."""
        for selection in selection_set.selections:
            included = _included(selection.directives or ())
            if included is False:
                continue
            surely = always and included is True
            if isinstance(selection, FieldNode):
                name = (selection.alias or selection.name).value
                key = keys.setdefault(name, _Key())
                key.nodes.append(selection)
                key.always = key.always or surely
                continue
            within = seen
            if isinstance(selection, InlineFragmentNode):
                condition = selection.type_condition
                inner = selection.selection_set
            else:
                assert isinstance(selection, FragmentSpreadNode)
                fragment_name = selection.name.value
                if fragment_name in seen:  # validated away; never unrolled forever
                    continue
                within = seen | {fragment_name}
                fragment = self.fragments[fragment_name]
                condition, inner = fragment.type_condition, fragment.selection_set
            if condition is None or self._applies(condition.name.value, object_type):
                self._collect(object_type, inner, keys, always=surely, seen=within)

    def _applies(self, condition: str, object_type: GraphQLObjectType) -> bool:
        if condition == object_type.name:
            return True
        named = self.schema.get_type(condition)
        return is_abstract_type(named) and self.schema.is_sub_type(named, object_type)

    def _field(self, parent: GraphQLObjectType, key: _Key) -> Any:
        name = key.nodes[0].name.value
        if name == TYPENAME:
            return {"type": "string", "const": parent.name}
        definition = parent.fields.get(name)
        if definition is None:  # introspection's own fields: not described here
            return {}
        selections = [n.selection_set for n in key.nodes if n.selection_set is not None]
        found = self._value(definition.type, selections)
        if definition.description and isinstance(found, dict):
            found = {**found, "description": " ".join(definition.description.split())}
        return found

    def _value(
        self, graphql_type: GraphQLOutputType, selections: Sequence[SelectionSetNode]
    ) -> dict[str, Any]:
        """A value of `graphql_type`: `null` too, unless it is non-null."""
        if isinstance(graphql_type, GraphQLNonNull):
            return self._non_null(graphql_type.of_type, selections)
        return _or_null(self._non_null(graphql_type, selections))

    def _non_null(
        self, graphql_type: Any, selections: Sequence[SelectionSetNode]
    ) -> dict[str, Any]:
        if isinstance(graphql_type, GraphQLList):
            return {"type": "array", "items": self._value(graphql_type.of_type, selections)}
        if isinstance(graphql_type, GraphQLEnumType):
            return {"type": "string", "enum": list(graphql_type.values)}
        if isinstance(graphql_type, GraphQLScalarType):
            return dict(SCALARS.get(graphql_type.name, {}))
        if isinstance(graphql_type, GraphQLObjectType):
            return self.object_of(graphql_type, selections)
        possible = self.schema.get_possible_types(graphql_type)  # a union or an interface
        branches = [self.object_of(t, selections) for t in possible]
        if not branches:  # an interface nothing implements: nothing to describe
            return {}
        told_apart = all(_typename_always(branch) for branch in branches)
        return {"oneOf" if told_apart else "anyOf": branches}


def _typename_always(branch: dict[str, Any]) -> bool:
    """Whether a member's answer always says its type (`__typename`, aliased or not)."""
    required = branch.get("required", ())
    return any("const" in prop and name in required for name, prop in branch["properties"].items())


def _included(directives: Iterable[DirectiveNode]) -> bool | None:
    """Whether a selection is in the answer: True always, False never, None when a
    variable decides (`@skip`, `@include`) or it is deferred (`@defer`)."""
    found: bool | None = True
    for directive in directives:
        name = directive.name.value
        if name == "defer":
            found = None
            continue
        if name not in ("skip", "include"):
            continue
        condition = next((a.value for a in directive.arguments or () if a.name.value == "if"), None)
        if not isinstance(condition, BooleanValueNode):
            found = None
            continue
        if condition.value is (name == "skip"):  # @skip(if: true), @include(if: false)
            return False
    return found


def _or_null(found: dict[str, Any]) -> dict[str, Any]:
    """`found`, or `null`: its `type` with "null" beside it (an enum's values with None),
    or a `null` branch beside its `oneOf`/`anyOf` ones."""
    if "type" in found:
        nullable = {**found, "type": [found["type"], "null"]}
        if "enum" in found:
            nullable["enum"] = [*found["enum"], None]
        return nullable
    for combined in ("oneOf", "anyOf"):
        if combined in found:
            return {**found, combined: [*found[combined], {"type": "null"}]}
    return found  # unconstrained: `null` is already one of its values
