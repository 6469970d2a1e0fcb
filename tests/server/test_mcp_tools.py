"""What a manifest document becomes as an MCP tool: its name, description, input schema
and scopes — and which documents are no tool, and why. `SCOPE_OF` is held to the scopes
the schema's resolvers require; the demo's manifest to its folder of `.graphql` files."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import jsonschema
import pytest
from graphql import GraphQLSchema

from gateway._compat.strawberry import core_schema
from gateway.access import SCOPES
from gateway.config.documents import digest
from gateway.schema import build_schema
from gateway.server.mcp_tools import SCOPE_OF, NotATool, Tool, tool_of, tools_of
from tests.helpers import ROOT

SCHEMA: GraphQLSchema = core_schema(build_schema())
PROVIDERS = list(SCHEMA.get_type("Provider").values)  # type: ignore[union-attr]  # OURVOICE, …
TOP_UP = """# Credits an account.
#   Once per key.
mutation TopUp($input: TopUpInput!) { topUp(input: $input) { __typename } }
"""


def tool(text: str) -> Tool:
    return tool_of(digest(text), text, SCHEMA)


def test_a_query_is_a_tool_named_and_described_by_its_document() -> None:
    found = tool(
        "\n# Balances at a glance,\n# for one provider.\n"
        "query Glance($providers: [Provider!], $first: Int! = 3) "
        '{ balances(providers: $providers) { complete } transactions(accountId: "m", '
        "first: $first) { __typename } }\n"
    )
    assert (found.name, found.kind, found.read_only) == ("Glance", "query", True)
    assert found.description == "Balances at a glance, for one provider."
    assert found.scopes == {"balances:read", "transactions:read"}
    assert found.input_schema == {
        "type": "object",
        "properties": {
            "providers": {
                "anyOf": [
                    {
                        "type": "array",
                        "items": {
                            "type": "string",
                            "enum": PROVIDERS,
                        },
                    },
                    {"type": "null"},
                ]
            },
            "first": {
                "type": "integer",
                "minimum": -(2**31),
                "maximum": 2**31 - 1,
                "default": 3,
            },
        },
        "additionalProperties": False,
    }


def test_a_mutations_input_object_is_checked_as_graphql_would() -> None:
    found = tool(TOP_UP)
    assert (found.kind, found.read_only) == ("mutation", False)
    assert found.scopes == {"topup:write"}
    assert found.description == "Credits an account. Once per key."
    schema = found.input_schema
    assert schema["required"] == ["input"]
    top_up = schema["properties"]["input"]
    assert top_up["required"] == [
        "accountId",
        "amount",
        "paymentMethod",
        "paymentReference",
        "idempotencyKey",
    ]
    good = {
        "accountId": "ourvoice-sn",
        "amount": "12.50",
        "paymentMethod": "MTN MOMO",
        "paymentReference": "PAY-1",
        "idempotencyKey": "k-1",
    }
    jsonschema.validate({"input": good}, schema)
    jsonschema.validate({"input": {**good, "currency": None}}, schema)
    for bad in (
        {"input": {**good, "amount": 12.5}},  # never a float
        {"input": {**good, "amount": "1e3"}},
        {"input": {k: v for k, v in good.items() if k != "idempotencyKey"}},
        {"input": {**good, "extra": 1}},
        {"input": good, "more": 1},
        {},
    ):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, schema)


def test_the_scopes_are_those_of_every_field_fragments_included() -> None:
    found = tool(
        "query Both { ...Mine accounts { id } }\n"
        'fragment Mine on Query { account(id: "x") { balance { __typename } '
        "transactions { __typename } } }"
    )
    assert found.scopes == {"balances:read", "transactions:read"}
    assert tool("query Places { countries { code } }").scopes == frozenset()


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("{ countries { code } }", "its operation has no name"),
        ("query A { countries { code } } query B { countries { code } }", "several operations"),
        ("subscription S { balanceUpdates { __typename } }", "a subscription is not a tool"),
        ("query Q { nope }", "does not validate"),
        ("query Q {", "does not parse"),
        (
            'mutation M { topUp(input: {accountId: "a", amount: "1", paymentMethod: "m", '
            'paymentReference: "r", idempotencyKey: "fixed"}) { __typename } }',
            "idempotencyKey is not a required variable",
        ),
        (
            'mutation M($k: String = "fixed") { topUp(input: {accountId: "a", amount: "1", '
            'paymentMethod: "m", paymentReference: "r", idempotencyKey: $k}) { __typename } }',
            "idempotencyKey is not a required variable",
        ),
        (
            'mutation M($input: TopUpInput! = {accountId: "a", amount: "1", paymentMethod: "m", '
            'paymentReference: "r", idempotencyKey: "fixed"}) { ...F } '
            "fragment F on Mutation { topUp(input: $input) { __typename } }",
            "idempotencyKey is not a required variable",
        ),
    ],
)
def test_what_is_no_tool_says_why(text: str, why: str) -> None:
    with pytest.raises(NotATool, match=re.escape(why)):
        tool(text)


def test_a_name_two_documents_share_is_no_tool_and_the_rest_are() -> None:
    one, other = "query Same { countries { code } }", "query Same { countries { name } }"
    documents = {digest(t): t for t in (one, other, TOP_UP, "{ countries { code } }")}
    tools, left_out = tools_of(documents, SCHEMA)
    assert [t.name for t in tools] == ["TopUp"]
    assert "operation Same: named by two documents" in left_out
    assert any("its operation has no name" in reason for reason in left_out)


def test_scope_of_names_the_scopes_the_schemas_resolvers_require() -> None:
    """Each resolver's scopes (its `principal.require` calls, together) are the whole
    scopes SCOPE_OF gives a field, and each field's are some resolver's: a scope added to a
    resolver and not here would show a tool to a key that cannot use it (a resolver that
    requires two — `refreshBalances` — is listed only to a key holding both)."""
    together: set[frozenset[str]] = set()
    for path in sorted((ROOT / "gateway" / "schema").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                found = re.findall(r"require\(['\"]([a-z:]+)['\"]\)", ast.unparse(node))
                if found:
                    together.add(frozenset(found))
    assert together == set(SCOPE_OF.values())
    assert frozenset({"balances:refresh", "balances:read"}) in together
    assert set().union(*together) <= set(SCOPES)
    for type_name, field_name in SCOPE_OF:
        assert field_name in SCHEMA.get_type(type_name).fields  # type: ignore[union-attr]


def test_a_tool_of_a_field_needing_two_scopes_is_listed_only_with_both() -> None:
    refresh = "mutation RefreshAll { refreshBalances { totals { currency } } }"
    (found,), _ = tools_of({digest(refresh): refresh}, SCHEMA)
    assert found.scopes == {"balances:refresh", "balances:read"}
    assert not found.usable_by(frozenset({"balances:refresh"}))
    assert found.usable_by(frozenset({"balances:refresh", "balances:read"}))


def test_a_date_variable_is_a_day_in_the_input_schema() -> None:
    close = "query Close($date: Date) { dailyClose(date: $date) { day } }"
    (found,), _ = tools_of({digest(close): close}, SCHEMA)
    day, null = found.input_schema["properties"]["date"]["anyOf"]
    assert null == {"type": "null"} and day["format"] == "date"
    pattern = re.compile(day["pattern"])
    assert pattern.match("2024-06-03") and not pattern.match("20240603")
    assert not pattern.match("1969-12-31") and not pattern.match("2100-01-01")


def test_the_demo_manifest_is_its_folder_of_documents_and_each_is_a_tool() -> None:
    folder = ROOT / "deploy" / "documents"
    texts = [p.read_text(encoding="utf-8") for p in sorted(Path(folder).glob("*.graphql"))]
    manifest = json.loads((ROOT / "deploy" / "demo-documents.json").read_text())
    assert manifest == {digest(t): t for t in texts}, (
        "rebuild it: balance-gateway documents manifest deploy/documents "
        "--output deploy/demo-documents.json"
    )
    tools, left_out = tools_of(manifest, SCHEMA)
    assert left_out == [] and len(tools) == len(texts)
    assert all(not t.description.startswith(f"The {t.name} ") for t in tools)
