"""A tool's output schema, built from its document's selection set: what `data` holds —
its keys (aliases), which are always there, where `null` may be, lists, enums, the
gateway's scalars, and a union's members with the fields its fragments select on each —
checked by validating answers against it, good ones and ones a client must not get."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import jsonschema
import pytest
from graphql import GraphQLSchema

from gateway._compat.strawberry import core_schema
from gateway.config.documents import digest
from gateway.schema import build_schema
from gateway.server.mcp_tools import tool_of

SCHEMA: GraphQLSchema = core_schema(build_schema())
PROVIDERS = list(SCHEMA.get_type("Provider").values)  # type: ignore[union-attr]


def output(text: str) -> dict[str, Any]:
    schema = tool_of(digest(text), text, SCHEMA).output_schema
    jsonschema.Draft202012Validator.check_schema(schema)  # a JSON Schema, to begin with
    return schema


# The formats the output schemas use, checked: jsonschema checks "date" itself, and
# "date-time" only with a package the gateway does not need (rfc3339-validator).
FORMATS = jsonschema.FormatChecker(["date"])


def instant(value: object) -> bool:
    """An ISO-8601 instant with its zone (RFC 3339's, with "Z" or an offset)."""
    return not isinstance(value, str) or (
        "T" in value and datetime.fromisoformat(value).tzinfo is not None
    )


FORMATS.checks("date-time", raises=ValueError)(instant)


def validator(schema: dict[str, Any]) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(schema, format_checker=FORMATS)


def valid(instance: Any, schema: dict[str, Any]) -> bool:
    return bool(validator(schema).is_valid(instance))


def test_the_selected_fields_by_their_response_names_null_only_where_the_schema_allows() -> None:
    schema = output(
        "query Places { places: countries { code prefix: dialPrefix } "
        "accounts { id provider capabilities } }"
    )
    assert (schema["type"], schema["additionalProperties"]) == ("object", False)
    assert schema["required"] == ["places", "accounts"]
    places = schema["properties"]["places"]
    assert (places["type"], places["items"]["type"]) == ("array", "object")
    assert places["items"]["required"] == ["code", "prefix"]  # always there, null or not
    assert places["items"]["additionalProperties"] is False
    place = schema["properties"]["places"]["items"]["properties"]
    assert place["code"]["type"] == "string"
    assert place["prefix"]["type"] == ["string", "null"]  # nullable: its type, or null
    account = schema["properties"]["accounts"]["items"]["properties"]
    assert account["provider"]["enum"] == PROVIDERS
    assert account["capabilities"]["type"] == "array"
    good: dict[str, Any] = {
        "places": [{"code": "UG", "prefix": "+256"}, {"code": "SN", "prefix": None}],
        "accounts": [{"id": "muda-ug", "provider": PROVIDERS[0], "capabilities": []}],
    }
    assert valid(good, schema)
    place_one = good["places"][0]
    for bad in (
        {**good, "places": [{**place_one, "code": None}]},  # non-null
        {**good, "places": [{"code": "UG"}]},  # a selected key is always there
        {**good, "places": [{**place_one, "dialPrefix": "+256"}]},  # the alias, not the name
        {**good, "more": 1},
        {**good, "accounts": [{**good["accounts"][0], "provider": "NOBODY"}]},
        {**good, "places": None},
    ):
        assert not valid(bad, schema), bad


def test_the_gateways_scalars_as_it_serializes_them() -> None:
    schema = output(
        "query Scalars { balances { results { ... on AccountBalance { fetchedAt stale "
        "balances { available { amount } } } ... on ProviderFailure { retryAfterSeconds } } } "
        "dailyClose { day } }"
    )
    union = schema["properties"]["balances"]["properties"]["results"]["items"]
    balance, failure = union["anyOf"]  # no __typename: the members are not told apart
    fetched = balance["properties"]["fetchedAt"]
    assert (fetched["type"], fetched["format"]) == ("string", "date-time")
    amount = balance["properties"]["balances"]["items"]["properties"]["available"]
    assert amount["properties"]["amount"]["type"] == "string"
    assert amount["properties"]["amount"]["pattern"] == r"^-?[0-9]+(\.[0-9]+)?$"
    assert failure["properties"]["retryAfterSeconds"]["type"] == ["integer", "null"]
    day = schema["properties"]["dailyClose"]["items"]["properties"]["day"]
    assert (day["type"], day["format"]) == ("string", "date")
    line = {"fetchedAt": "2024-06-04T00:43:26Z", "stale": False, "balances": []}
    good = {
        "balances": {
            "results": [
                {**line, "balances": [{"available": {"amount": "-12.50"}}]},
                {"retryAfterSeconds": 30},
            ]
        },
        "dailyClose": [{"day": "2024-06-03"}],
    }
    assert valid(good, schema)
    for bad_amount in (12.5, "1e3", "12.", "1_000"):
        wrong = {**line, "balances": [{"available": {"amount": bad_amount}}]}
        assert not valid({**good, "balances": {"results": [wrong]}}, schema), bad_amount
    assert not valid({**good, "dailyClose": [{"day": "20240603"}]}, schema)
    late = {**line, "fetchedAt": "yesterday"}
    assert not valid({**good, "balances": {"results": [late]}}, schema)


UNION = """query Glance {
  balances {
    results {
      __typename
      ... on AccountBalance { account { id } stale }
      ...Failed
    }
  }
}
fragment Failed on ProviderFailure { account { id } code retryAfterSeconds }
"""


def test_a_unions_members_each_with_what_its_fragments_select_told_apart_by_typename() -> None:
    schema = output(UNION)
    items = schema["properties"]["balances"]["properties"]["results"]["items"]
    balance, failure = items["oneOf"]
    assert balance["properties"]["__typename"] == {"type": "string", "const": "AccountBalance"}
    assert balance["required"] == ["__typename", "account", "stale"]
    assert failure["required"] == ["__typename", "account", "code", "retryAfterSeconds"]
    ok = {"__typename": "AccountBalance", "account": {"id": "muda-ug"}, "stale": False}
    failed = {
        "__typename": "ProviderFailure",
        "account": {"id": "magma"},
        "code": "UPSTREAM_UNAVAILABLE",
        "retryAfterSeconds": None,
    }
    assert valid({"balances": {"results": [ok, failed]}}, schema)
    for bad in (
        {**ok, "__typename": "ProviderFailure"},  # a member's fields under another's name
        {**ok, "code": "UPSTREAM_UNAVAILABLE"},  # a field of the other member
        {**failed, "code": "NOT_A_CODE"},
        {**failed, "retryAfterSeconds": "30"},
    ):
        assert not valid({"balances": {"results": [bad]}}, schema), bad


def test_typename_under_an_alias_tells_the_members_apart_too_and_conditional_does_not() -> None:
    aliased = output("query T { topUp: balances { results { kind: __typename } } }")
    items = aliased["properties"]["topUp"]["properties"]["results"]["items"]
    assert [m["properties"]["kind"]["const"] for m in items["oneOf"]] == [
        "AccountBalance",
        "ProviderFailure",
    ]
    maybe = output("query T($t: Boolean!) { balances { results { __typename @include(if: $t) } } }")
    items = maybe["properties"]["balances"]["properties"]["results"]["items"]
    assert "anyOf" in items  # a member without its __typename could be either
    assert valid({"balances": {"results": [{}]}}, maybe)


def test_what_a_variable_decides_may_be_missing_and_what_is_skipped_is_never_there() -> None:
    schema = output(
        "query Places($more: Boolean!) { countries { code name @include(if: $more) "
        "rawCode @skip(if: true) currency @include(if: true) ... @include(if: $more) "
        "{ dialPrefix } } }"
    )
    place = schema["properties"]["countries"]["items"]
    assert sorted(place["properties"]) == ["code", "currency", "dialPrefix", "name"]
    assert place["required"] == ["code", "currency"]
    assert valid({"countries": [{"code": "UG", "currency": "UGX"}]}, schema)


def test_a_mutations_data_is_its_root_fields() -> None:
    schema = output(
        "mutation TopUp($input: TopUpInput!) { topUp(input: $input) { __typename "
        "... on TopUpRejected { code } } }"
    )
    members = schema["properties"]["topUp"]["oneOf"]
    assert [m["properties"]["__typename"]["const"] for m in members] == [
        "TopUpSucceeded",
        "TopUpPending",
        "TopUpRejected",
    ]
    assert valid({"topUp": {"__typename": "TopUpPending"}}, schema)
    assert not valid({"topUp": {"__typename": "TopUpPending", "code": "VALIDATION"}}, schema)
    assert not valid({"topUp": {"__typename": "TopUpRejected"}}, schema)  # its code missing


@pytest.mark.parametrize("nullable", [True, False])
def test_a_nullable_union_takes_null_and_a_non_null_one_does_not(nullable: bool) -> None:
    field = 'account(id: "x")' if nullable else "accounts"
    schema = output(f"query A {{ found: {field} {{ balance {{ __typename }} }} }}")
    assert valid({"found": None}, schema) is nullable
