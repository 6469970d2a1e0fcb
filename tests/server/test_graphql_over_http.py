"""GraphQL over HTTP: the response's media type by `Accept`, request errors as 400 without
`data` under application/graphql-response+json, the legacy 200 under application/json, 406
when neither is acceptable, and `extensions` only as an object. (The spec's own audit runs
against the real server in tests/system/test_graphql_http_audit.py.)"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from gateway.server.media import GRAPHQL_RESPONSE, JSON, negotiate
from tests.helpers import FakeClock, GatewayClient, demo_settings, running_gateway, with_section


@pytest.mark.parametrize(
    ("accept", "chosen"),
    [
        (None, JSON),
        ("", JSON),
        ("*/*", JSON),  # curl's: the legacy type, so old clients see no change
        ("application/json", JSON),
        (GRAPHQL_RESPONSE, GRAPHQL_RESPONSE),
        (f"{GRAPHQL_RESPONSE}, application/json;q=0.9", GRAPHQL_RESPONSE),
        (f"application/json, {GRAPHQL_RESPONSE}", GRAPHQL_RESPONSE),  # a tie: the new type
        (f"application/json, {GRAPHQL_RESPONSE};q=0.5", JSON),
        (f"{GRAPHQL_RESPONSE};q=0, */*;q=0.1", JSON),
        ("application/*", JSON),
        ("text/html", None),
        ("application/xml, text/plain;q=0.5", None),
        (f"{GRAPHQL_RESPONSE};q=zero", None),
    ],
)
def test_the_media_type_follows_accept(accept: str | None, chosen: str | None) -> None:
    assert negotiate(accept) == chosen


@pytest.fixture
async def gw(
    sim_transport: httpx.AsyncBaseTransport, clock: FakeClock
) -> AsyncIterator[GatewayClient]:
    settings = demo_settings()
    limits = dataclasses.replace(settings.security.limits, allow_get=True)
    settings = with_section(settings, "security", limits=limits)
    async with running_gateway(settings, sim_transport, clock) as gateway:
        yield gateway


async def post(
    gw: GatewayClient, body: dict[str, Any], accept: str | None = GRAPHQL_RESPONSE
) -> httpx.Response:
    headers = {} if accept is None else {"accept": accept}
    return await gw.http.post("/graphql", json=body, headers=headers)


REQUEST_ERRORS: dict[str, dict[str, Any]] = {
    "parse": {"query": "{ balances {"},
    "validation": {"query": "{ nope }"},
    "variables": {
        "query": "query($ids: [ID!]) { balances(accountIds: $ids) { complete } }",
        "variables": {"ids": [{"not": "an id"}]},
    },
    "operation": {"query": "query A { __typename } query B { __typename }"},
}


@pytest.mark.parametrize("case", sorted(REQUEST_ERRORS))
async def test_a_request_error_is_400_without_data_in_the_new_type_and_200_in_json(
    gw: GatewayClient, case: str
) -> None:
    new = await post(gw, REQUEST_ERRORS[case])
    legacy = await post(gw, REQUEST_ERRORS[case], accept="application/json")
    assert new.status_code == 400
    assert new.headers["content-type"] == f"{GRAPHQL_RESPONSE}; charset=utf-8"
    assert "data" not in new.json() and new.json()["errors"]
    assert legacy.status_code == 200 and legacy.headers["content-type"] == "application/json"
    assert legacy.json()["data"] is None and legacy.json()["errors"]


async def test_an_executed_request_is_200_in_both_types_field_errors_included(
    gw: GatewayClient,
) -> None:
    ok = await post(gw, {"query": "{ balances { complete } }"})
    missing = await post(gw, {"query": '{ balances(accountIds: ["nope"]) { complete } }'})
    again = await post(gw, {"query": "{ balances { complete } }"})  # the response cache
    assert ok.status_code == 200 and ok.json()["data"]["balances"]["complete"] is True
    assert ok.headers["content-type"] == f"{GRAPHQL_RESPONSE}; charset=utf-8"
    assert missing.status_code == 200 and "data" in missing.json()  # executed: a field error
    assert missing.json()["errors"][0]["extensions"]["code"] == "NOT_FOUND"
    assert again.content == ok.content
    assert again.headers["content-type"].startswith(GRAPHQL_RESPONSE)


async def test_nothing_acceptable_is_406_and_extensions_must_be_an_object(
    gw: GatewayClient,
) -> None:
    refused = await post(gw, {"query": "{ __typename }"}, accept="text/plain")
    assert refused.status_code == 406
    assert refused.json()["errors"][0]["message"].startswith("Accept application/graphql")
    for extensions in ("x", 1, True, [1]):
        bad = await post(gw, {"query": "{ __typename }", "extensions": extensions})
        assert bad.status_code == 400, extensions
        got = await gw.http.get(
            "/graphql",
            params={"query": "{ __typename }", "extensions": json.dumps(extensions)},
            headers={"accept": GRAPHQL_RESPONSE},
        )
        assert got.status_code == 400, extensions
    fine = await post(gw, {"query": "{ __typename }", "extensions": {}})
    assert fine.status_code == 200
