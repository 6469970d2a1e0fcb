"""The trusted documents as MCP tools: what each one is called, says, takes and needs.

A manifest document (`[trusted_documents]`) becomes a tool when it holds exactly one
named query or mutation that validates against the schema: the tool's name is the
operation's name, its description the document's leading `#` comment, its input schema the
operation's variables as JSON Schema (a non-null variable without a default is required;
nothing else is accepted), its output schema that of the GraphQL `data` it answers
(`mcp_output.py`), and the scopes it needs are those of the fields it selects
(`SCOPE_OF`). Anything else in the manifest — an anonymous operation, several operations,
a subscription, a name two documents share, a `topUp` whose idempotency key is not the
caller's — is no tool, and `tools_of` says why (logged once at start).

Nothing here knows the MCP SDK: `mcp.py` serves these.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    GraphQLEnumType,
    GraphQLError,
    GraphQLInputObjectType,
    GraphQLInputType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLScalarType,
    GraphQLSchema,
    NonNullTypeNode,
    ObjectValueNode,
    OperationDefinitionNode,
    OperationType,
    TypeInfo,
    TypeInfoVisitor,
    Undefined,
    VariableDefinitionNode,
    VariableNode,
    Visitor,
    parse,
    type_from_ast,
    validate,
    value_from_ast_untyped,
    visit,
)

from gateway.schema.scalars import DECIMAL
from gateway.server.mcp_output import output_schema

# The scopes each field needs, as its resolver requires them (`principal.require`): a tool
# is listed to a caller holding every scope of the fields its document selects.
# tests/server/test_mcp_tools.py holds this table to the schema's `require` calls.
READ, HISTORY = frozenset({"balances:read"}), frozenset({"transactions:read"})
SCOPE_OF: Mapping[tuple[str, str], frozenset[str]] = {
    ("Query", "balances"): READ,
    ("Account", "balance"): READ,
    ("Query", "transactions"): HISTORY,
    ("Account", "transactions"): HISTORY,
    ("Query", "dailyClose"): HISTORY,
    ("Mutation", "topUp"): frozenset({"topup:write"}),
    ("Mutation", "refreshBalances"): frozenset({"balances:refresh", "balances:read"}),
}

# JSON Schema of the scalars a variable may be; another (none today) is left unconstrained.
SCALARS: Mapping[str, Mapping[str, Any]] = {
    "String": {"type": "string"},
    "ID": {"type": "string"},
    "Int": {"type": "integer", "minimum": -(2**31), "maximum": 2**31 - 1},
    "Float": {"type": "number"},
    "Boolean": {"type": "boolean"},
    "Decimal": {
        "type": "string",
        "pattern": f"^{DECIMAL.pattern}$",
        "description": 'An exact decimal number as a string, e.g. "5000" or "12.50".',
    },
    "DateTime": {
        "type": "string",
        "format": "date-time",
        "description": "An ISO-8601 instant with its zone, e.g. 2024-06-04T00:43:26Z.",
    },
    "Date": {
        "type": "string",
        "format": "date",
        "pattern": r"^(19[7-9][0-9]|20[0-9][0-9])-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$",
        "description": "A calendar day, YYYY-MM-DD, 1970-01-01 to 2099-12-31.",
    },
}


@dataclass(frozen=True)
class Tool:
    """One manifest document as a tool."""

    name: str
    description: str
    document: str  # the manifest's exact text: what runs, and all that runs
    document_id: str  # its SHA-256 (hex), as the manifest keys it
    kind: str  # "query" | "mutation"
    input_schema: dict[str, Any]
    output_schema: dict[str, Any] = field(default_factory=dict)  # of `data`
    scopes: frozenset[str] = field(default_factory=frozenset)

    @property
    def read_only(self) -> bool:
        return self.kind == "query"

    def usable_by(self, scopes: frozenset[str]) -> bool:
        return self.scopes <= scopes


def tools_of(documents: Mapping[str, str], schema: GraphQLSchema) -> tuple[list[Tool], list[str]]:
    """The manifest's tools, by name, and why each other document is none."""
    found: dict[str, Tool] = {}
    left_out: list[str] = []
    shared: set[str] = set()
    for document_id, text in sorted(documents.items()):
        try:
            tool = tool_of(document_id, text, schema)
        except NotATool as exc:
            left_out.append(f"document sha256:{document_id[:12]}…: {exc}")
            continue
        if tool.name in found or tool.name in shared:
            shared.add(tool.name)
            found.pop(tool.name, None)
            left_out.append(f"operation {tool.name}: named by two documents")
            continue
        found[tool.name] = tool
    return sorted(found.values(), key=lambda t: t.name), left_out


class NotATool(Exception):
    """Why a manifest document is not a tool."""


def tool_of(document_id: str, text: str, schema: GraphQLSchema) -> Tool:
    try:
        document = parse(text)
    except GraphQLError as exc:
        raise NotATool(f"does not parse ({exc.message})") from None
    errors = validate(schema, document)
    if errors:
        raise NotATool(f"does not validate ({errors[0].message})")
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if len(operations) != 1:
        raise NotATool("holds several operations: a tool is one")
    (operation,) = operations
    if operation.name is None:
        raise NotATool("its operation has no name: a tool is named by it")
    if operation.operation == OperationType.SUBSCRIPTION:
        raise NotATool("a subscription is not a tool")
    name = operation.name.value
    kind = operation.operation.value
    if kind == "mutation":
        caller_keys(document, operation, schema)
    return Tool(
        name=name,
        description=leading_comment(text) or f"The {name} {kind}.",
        document=text,
        document_id=document_id,
        kind=kind,
        input_schema=input_schema(operation, schema),
        output_schema=output_schema(operation, fragments_of(document), schema),
        scopes=scopes_of(document, schema),
    )


def fragments_of(document: DocumentNode) -> dict[str, FragmentDefinitionNode]:
    return {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}


def leading_comment(text: str) -> str:
    """The document's first `#` lines, without their `#` (blank lines before them skipped)."""
    lines: list[str] = []
    for line in text.lstrip().splitlines():
        stripped = line.strip()
        if not stripped.startswith("#"):
            break
        lines.append(stripped[1:].strip())
    return " ".join(" ".join(lines).split())


def input_schema(operation: OperationDefinitionNode, schema: GraphQLSchema) -> dict[str, Any]:
    properties: dict[str, Any] = {}
    required: list[str] = []
    for definition in operation.variable_definitions or ():
        name = definition.variable.name.value
        graphql_type = type_from_ast(schema, definition.type)
        assert graphql_type is not None  # validated: every variable's type exists
        prop = json_schema(graphql_type)  # type: ignore[arg-type]
        if definition.default_value is not None:
            prop = {**prop, "default": value_from_ast_untyped(definition.default_value)}
        elif isinstance(graphql_type, GraphQLNonNull):
            required.append(name)
        properties[name] = prop
    found: dict[str, Any] = {
        "type": "object",
        "properties": properties,
        "additionalProperties": False,
    }
    if required:
        found["required"] = required
    return found


def json_schema(graphql_type: GraphQLInputType, seen: frozenset[str] = frozenset()) -> Any:
    """A GraphQL input type as JSON Schema: a nullable one also takes `null`."""
    if isinstance(graphql_type, GraphQLNonNull):
        return _non_null(graphql_type.of_type, seen)
    return {"anyOf": [_non_null(graphql_type, seen), {"type": "null"}]}


def _non_null(graphql_type: Any, seen: frozenset[str]) -> dict[str, Any]:
    if isinstance(graphql_type, GraphQLList):
        return {"type": "array", "items": json_schema(graphql_type.of_type, seen)}
    if isinstance(graphql_type, GraphQLEnumType):
        found: dict[str, Any] = {"type": "string", "enum": list(graphql_type.values)}
    elif isinstance(graphql_type, GraphQLInputObjectType):
        if graphql_type.name in seen:  # an input type that holds itself: not unrolled
            return {"type": "object"}
        inner = seen | {graphql_type.name}
        fields = graphql_type.fields
        found = {
            "type": "object",
            "properties": {
                name: _described(json_schema(f.type, inner), f.description)
                for name, f in fields.items()
            },
            "additionalProperties": False,
        }
        required = [
            name
            for name, f in fields.items()
            if isinstance(f.type, GraphQLNonNull) and f.default_value is Undefined
        ]
        if required:
            found["required"] = required
    else:  # a scalar: described here, for a client to send (not as the schema serves it)
        assert isinstance(graphql_type, GraphQLScalarType)
        return dict(SCALARS.get(graphql_type.name, {}))
    return _described(found, graphql_type.description)


def _described(found: dict[str, Any], description: str | None) -> dict[str, Any]:
    """`found` with `description`, if there is one (on one line)."""
    if not description:
        return found
    return {**found, "description": " ".join(description.split())}


class _Fields(Visitor):
    """Every field a document selects, as (parent type, field name) → its nodes."""

    def __init__(self, info: TypeInfo) -> None:
        super().__init__()
        self.info = info
        self.found: dict[tuple[str, str], list[FieldNode]] = {}

    def enter_field(self, node: FieldNode, *_: Any) -> None:
        parent = self.info.get_parent_type()
        if parent is not None:
            self.found.setdefault((parent.name, node.name.value), []).append(node)


def fields_of(
    document: DocumentNode, schema: GraphQLSchema
) -> dict[tuple[str, str], list[FieldNode]]:
    """The fields the document selects (its fragments' included)."""
    info = TypeInfo(schema)
    fields = _Fields(info)
    visit(document, TypeInfoVisitor(info, fields))
    return fields.found


def scopes_of(document: DocumentNode, schema: GraphQLSchema) -> frozenset[str]:
    """The scopes of every field the document selects."""
    return frozenset().union(*(SCOPE_OF[f] for f in fields_of(document, schema) if f in SCOPE_OF))


def caller_keys(
    document: DocumentNode, operation: OperationDefinitionNode, schema: GraphQLSchema
) -> None:
    """A `topUp` takes its idempotency key from the caller, every call: from a required
    variable without a default — never a key the manifest (the server) fixes, which would
    make every call after the first a replay of it."""
    variables = {d.variable.name.value: d for d in operation.variable_definitions or ()}
    for selection in fields_of(document, schema).get(("Mutation", "topUp"), []):
        value = next((a.value for a in selection.arguments or ()), None)
        key = value
        if isinstance(value, ObjectValueNode):
            key = next((f.value for f in value.fields if f.name.value == "idempotencyKey"), None)
        if not (isinstance(key, VariableNode) and _required(variables[key.name.value])):
            raise NotATool(
                "its topUp's idempotencyKey is not a required variable: the caller gives "
                "a key every call"
            )


def _required(definition: VariableDefinitionNode) -> bool:
    return definition.default_value is None and isinstance(definition.type, NonNullTypeNode)
