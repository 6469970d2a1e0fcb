"""A faster way through plain data: objects whose selected fields are all plain attributes.

graphql-core completes every field on its own: resolve info, resolver call, awaitable
checks, completion by type — about 7 µs a field, 3 ms for a dashboard's four accounts.
Most of a `balances` answer is frozen domain values (balances, money, assets, countries)
read attribute by attribute. For an object whose selected fields are all plain
Strawberry fields (no resolver, no arguments, no extensions, no middleware) of leaf or
such plain object types, a plan reads them in one loop. Plans are built once per parsed
document, schema and set of `@skip`/`@include` variable values (`_SharedPlans`).

Anything unusual — a null where the schema says non-null, a scalar that refuses its value
(whatever it raises), a value that is not a list where a list is expected, an attribute
that cannot be read — raises `_Unusual`, which abandons the plan for that object and lets
graphql-core complete it the normal way, so errors, paths and null propagation are exactly
graphql-core's. Reading a frozen value twice has no side effects. Only `_Unusual` is
caught: a bug in the plans themselves surfaces as an error, never as a silent slowdown.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import suppress
from operator import attrgetter
from typing import Any, cast
from weakref import WeakKeyDictionary

from graphql import (
    DirectiveNode,
    FragmentDefinitionNode,
    GraphQLBoolean,
    GraphQLEnumType,
    GraphQLID,
    GraphQLLeafType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLScalarType,
    GraphQLSchema,
    GraphQLString,
    OperationDefinitionNode,
    Undefined,
    VariableNode,
    visit,
)
from graphql import Visitor as Visitor_
from graphql.pyutils import Path
from strawberry.types.field import StrawberryField

from gateway._compat.graphql import (
    FieldDetailsList,
    forget_field_groups,
    helpers_holding_weakly,
)
from gateway._compat.strawberry import ExecutionContextBase, is_default_resolver
from gateway.schema.execution.per_object import PerObject

Complete = Callable[[Any], Any]
Plan = Callable[[Any], dict[str, Any]]


class _Unusual(Exception):
    """This value needs graphql-core's own completion."""


def _unchanged(type_: GraphQLLeafType) -> type | None:
    """The Python type whose values this scalar returns as they are."""
    if type_ is GraphQLString or type_ is GraphQLID:
        return str
    return bool if type_ is GraphQLBoolean else None


# The null check is written out in each completer rather than shared: these run once per
# field of every answer, and a call per field is what plans exist to save.


def _memoized(coerce: Callable[[Any], Any], size: int = 64) -> Callable[[Any], Any]:
    """An enum's output coercion, remembered per value (Strawberry's scans every member):
    a member always names the same value. Unhashable values, and values past `size`, are
    coerced every time."""
    known: dict[Any, Any] = {}

    def remembered(value: Any) -> Any:
        try:
            return known[value]
        except (KeyError, TypeError):
            pass
        coerced = coerce(value)
        with suppress(TypeError):
            if len(known) < size:
                known[value] = coerced
        return coerced

    return remembered


def _leaf(type_: GraphQLLeafType, non_null: bool) -> Complete:
    coerce = type_.coerce_output_value
    if isinstance(type_, GraphQLEnumType):
        coerce = _memoized(coerce)
    same = _unchanged(type_)

    def complete(value: Any) -> Any:
        if type(value) is same:
            return value
        if value is None:
            if non_null:
                raise _Unusual
            return None
        try:
            coerced = coerce(value)
        except Exception as exc:  # the scalar refuses it: graphql-core reports how
            raise _Unusual from exc
        if coerced is None or coerced is Undefined:
            raise _Unusual
        return coerced

    return complete


def _object(plan: Plan, non_null: bool) -> Complete:
    def complete(value: Any) -> Any:
        if value is None:
            if non_null:
                raise _Unusual
            return None
        return plan(value)

    return complete


def _list(item: Complete, non_null: bool) -> Complete:
    def complete(value: Any) -> Any:
        if value is None:
            if non_null:
                raise _Unusual
            return None
        if not isinstance(value, (list, tuple)):
            raise _Unusual
        return [item(v) for v in value]

    return complete


def _same(value: Any) -> Any:
    return value


def _constant(value: Any) -> Callable[[Any], Any]:
    return lambda _: value


def _plain_getter(field: Any) -> Callable[[Any], Any] | None:
    """`attrgetter` for a plain Strawberry field, None for anything with behaviour."""
    definition = field.extensions.get("strawberry-definition")
    if (
        not isinstance(definition, StrawberryField)
        or field.args
        or not is_default_resolver(field.resolve)
        or definition.default_resolver is not getattr
    ):
        return None
    return attrgetter(definition.python_name)


class FastCompletionContext(ExecutionContextBase):
    """Strawberry's execution context with plans for plain objects (see module doc)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.async_helpers = helpers_holding_weakly(self)  # no cycle per request
        manager = self.middleware_manager
        self._plans_allowed = manager is None or not manager.middlewares
        # Per execution, on the group's identity (as graphql-core memoizes
        # `collect_subfields`), the group kept alive so that its id is not reused.
        self.local_plans: dict[tuple[str, int], tuple[FieldDetailsList, Plan | None]] = {}
        shared = _SHARED.get(self.schema)
        if shared is None:
            shared = _SHARED[self.schema] = _SharedPlans()
        self._shared = shared.plans_for(
            self.operation, self.fragment_definitions, self.variable_values.coerced
        )

    def build_per_event_executor(self, payload: Any) -> FastCompletionContext:
        """A subscription event's executor, with its own memos of field groups: shared
        with the subscription's (graphql-core copies it), they grew by every event."""
        executor = cast("FastCompletionContext", super().build_per_event_executor(payload))
        forget_field_groups(executor)
        executor.local_plans = {}
        return executor

    def collect_and_execute_subfields(
        self,
        return_type: GraphQLObjectType,
        field_details_list: FieldDetailsList,
        path: Path,
        result: Any,
        position_context: Any,
    ) -> Any:
        plan = self._plan(return_type, field_details_list) if self._plans_allowed else None
        if plan is not None:
            with suppress(_Unusual):  # graphql-core completes and reports it, below
                return (
                    plan(result)
                    if self._shared is None
                    else _RENDERED.get(result, plan, lambda: plan(result))
                )
        return super().collect_and_execute_subfields(
            return_type, field_details_list, path, result, position_context
        )

    def _plan(self, object_type: GraphQLObjectType, group: FieldDetailsList) -> Plan | None:
        key = (object_type.name, id(group))
        known = self.local_plans.get(key)
        if known is None:
            known = (group, self._shared_plan(object_type, group))
            self.local_plans[key] = known
        return known[1]

    def _shared_plan(self, object_type: GraphQLObjectType, group: FieldDetailsList) -> Plan | None:
        if self._shared is None:
            return self._build_plan(object_type, group)
        key = (object_type.name, tuple(id(details.node) for details in group))
        if key not in self._shared:
            self._shared[key] = self._build_plan(object_type, group)
        return self._shared[key]

    def _build_plan(self, object_type: GraphQLObjectType, group: FieldDetailsList) -> Plan | None:
        if object_type.is_type_of is not None:
            return None
        fields, defer_usages, forbidden = self.collect_subfields(object_type, group)
        if defer_usages or forbidden:
            return None
        steps: list[tuple[str, Callable[[Any], Any], Complete]] = []
        for response_key, sub_group in fields.items():
            name = sub_group[0].node.name.value
            if name == "__typename":
                steps.append((response_key, _constant(object_type.name), _same))
                continue
            field = object_type.fields.get(name)
            getter = _plain_getter(field) if field is not None else None
            complete = self._completion(field.type, sub_group) if field is not None else None
            if getter is None or complete is None:
                return None
            steps.append((response_key, getter, complete))

        def plan(source: Any) -> dict[str, Any]:
            out: dict[str, Any] = {}
            for response_key, getter, complete in steps:
                try:
                    value = getter(source)
                except Exception as exc:  # graphql-core's resolver reports this one
                    raise _Unusual from exc
                out[response_key] = complete(value)
            return out

        return plan

    def _completion(self, type_: GraphQLOutputType, group: FieldDetailsList) -> Complete | None:
        non_null = isinstance(type_, GraphQLNonNull)
        inner = type_.of_type if isinstance(type_, GraphQLNonNull) else type_
        if isinstance(inner, GraphQLList):
            item = self._completion(inner.of_type, group)
            return None if item is None else _list(item, non_null)
        if isinstance(inner, GraphQLScalarType | GraphQLEnumType):
            return _leaf(inner, non_null)
        if isinstance(inner, GraphQLObjectType):
            plan = self._plan(inner, group)
            return None if plan is None else _object(plan, non_null)
        return None  # interfaces and unions: graphql-core resolves the runtime type


class _SharedPlans:
    """Plans shared by every execution of one parsed document (the schema's parse cache,
    `parsed_documents.py`, hands out the same nodes for the same text) and one set of
    directive variables.

    A plan depends on the document's nodes, the object type and the values of variables
    that `@skip`/`@include` read; it holds no data. Entries keep their operation and
    fragments alive, so node ids in keys are not reused; oldest entries are dropped past
    `max_documents`. Documents using `@defer`/`@stream` get no shared plans.
    """

    def __init__(self, max_documents: int = 256, max_variants: int = 16) -> None:
        self._max_documents = max_documents
        self._max_variants = max_variants
        self._documents: dict[int, _Document] = {}

    def plans_for(
        self,
        operation: OperationDefinitionNode,
        fragments: dict[str, FragmentDefinitionNode],
        variables: dict[str, Any],
    ) -> dict[tuple[str, tuple[int, ...]], Plan | None] | None:
        document = self._documents.get(id(operation))
        if document is None or document.operation is not operation:
            document = _Document(operation, fragments)
            self._documents[id(operation)] = document
            if len(self._documents) > self._max_documents:
                del self._documents[next(iter(self._documents))]
        if document.directive_variables is None:
            return None
        try:
            variant = tuple(variables.get(name) for name in document.directive_variables)
            plans = document.variants.get(variant)
        except TypeError:  # an unhashable value: plan this execution on its own
            return None
        if plans is None:
            if len(document.variants) >= self._max_variants:
                return None
            plans = document.variants[variant] = {}
        return plans


class _Document:
    def __init__(
        self, operation: OperationDefinitionNode, fragments: dict[str, FragmentDefinitionNode]
    ) -> None:
        self.operation = operation
        self.fragments = fragments
        self.directive_variables = _directive_variables(operation, fragments)
        self.variants: dict[tuple[Any, ...], dict[tuple[str, tuple[int, ...]], Plan | None]] = {}


def _directive_variables(
    operation: OperationDefinitionNode, fragments: dict[str, FragmentDefinitionNode]
) -> tuple[str, ...] | None:
    """Names of the variables directives read; None if the document defers or streams."""
    names: set[str] = set()
    incremental = False

    class Visitor(Visitor_):
        def enter_directive(self, node: DirectiveNode, *_: Any) -> None:
            nonlocal incremental
            incremental = incremental or node.name.value in ("defer", "stream")
            for argument in node.arguments or ():
                visit(argument, VariableCollector())

    class VariableCollector(Visitor_):
        def enter_variable(self, node: VariableNode, *_: Any) -> None:
            names.add(node.name.value)

    for root in (operation, *fragments.values()):
        visit(root, Visitor())
    return None if incremental else tuple(sorted(names))


# A shared plan's rendering of an object, for every request that asks for the same object
# the same way (requests that waited on one read get the same objects): no convoy of
# requests each completing it again as the read lands. A plan reads plain attributes
# alike for every caller of its document.
_RENDERED: PerObject[dict[str, Any]] = PerObject()

# One set per schema: a plan holds that schema's fields and scalars.
_SHARED: WeakKeyDictionary[GraphQLSchema, _SharedPlans] = WeakKeyDictionary()
