"""The GraphQL surface, in-process: the real app on the simulator."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import httpx
import pytest
from graphql import build_client_schema, get_introspection_query

from gateway.cli import main as cli_main
from gateway.schema import sdl
from gateway.simulator import Simulator
from gateway.simulator.magma_onepay import MAGMA
from tests.helpers import (
    ROOT,
    FakeClock,
    demo_settings,
    production,
    running_gateway,
    with_account,
    with_server,
)

BALANCES = """
query($ids: [ID!], $providers: [Provider!]) {
  balances(accountIds: $ids, providers: $providers) {
    complete
    totals { currency kind total { amount currency } available { amount } }
    results {
      __typename
      ... on AccountBalance {
        account { id provider label capabilities }
        fetchedAt stale
        balances {
          id asset { code currency kind issuer } country { code name dialPrefix currency rawCode }
          total { amount currency } available { amount currency } pending { amount } updatedAt
        }
      }
      ... on ProviderFailure { account { id } code message retryable retryAfterSeconds }
    }
  }
}
"""


def by_id(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["account"]["id"]: r for r in report["results"]}


async def test_all_five_demo_accounts_answer_with_the_seed_amounts(
    sim: Simulator, sim_transport: httpx.AsyncBaseTransport, clock: FakeClock
) -> None:
    async with running_gateway(demo_settings(), sim_transport, clock) as gateway:
        result = await gateway.query(BALANCES)
    report = result["data"]["balances"]
    assert "errors" not in result
    assert report["complete"] is True
    results = by_id(report)
    assert list(results) == ["ourvoice-sn", "ourvoice-ci", "magma", "muda-ug", "paymob-eg"]
    assert {r["__typename"] for r in results.values()} == {"AccountBalance"}
    assert results["ourvoice-ci"]["balances"][0]["total"] == {"amount": "125750", "currency": "XOF"}
    congo = next(b for b in results["magma"]["balances"] if b["id"] == "magma:CD:CDF")
    assert congo["country"]["rawCode"] == "RDC"
    assert congo["total"]["amount"] == str(MAGMA[0].corridors[-1]["balance"])
    assert congo["pending"]["amount"] == "50000.00"
    assert congo["updatedAt"] == "2024-06-04T09:09:09Z"
    muda = {b["id"]: b for b in results["muda-ug"]["balances"]}
    assert muda["muda-ug:cUGX:issuer_ugx"]["total"]["amount"] == "650.0000000"
    assert muda["muda-ug:cUGX:issuer_ugx"]["asset"]["kind"] == "COLLATERAL"
    assert results["paymob-eg"]["balances"][1]["total"]["amount"] == "12.90"
    assert results["magma"]["fetchedAt"] == "2024-06-04T00:43:26Z"


async def test_totals_add_only_like_with_like(
    sim_transport: httpx.AsyncBaseTransport, clock: FakeClock
) -> None:
    async with running_gateway(demo_settings(), sim_transport, clock) as gateway:
        report = (await gateway.query(BALANCES))["data"]["balances"]
    totals = {(t["currency"], t["kind"]): t for t in report["totals"]}
    # XOF cash: Magma's five XOF corridors; Our Voice credit is XOF too but another kind.
    xof_cash = sum(Decimal(str(c["balance"])) for c in MAGMA[0].corridors if c["currency"] == "XOF")
    assert Decimal(totals["XOF", "CASH"]["total"]["amount"]) == xof_cash
    assert totals["XOF", "PREPAID_CREDIT"]["total"]["amount"] == "175750"
    # UGX collateral is never added into UGX cash.
    assert totals["UGX", "CASH"]["total"]["amount"] == "1504621.0000000"
    assert totals["UGX", "COLLATERAL"]["total"]["amount"] == "650.0000000"
    assert totals["EGP", "COMMISSION"]["available"]["amount"] == "12.90"


async def test_one_failing_account_never_blanks_the_others(
    sim: Simulator, sim_transport: httpx.AsyncBaseTransport, clock: FakeClock
) -> None:
    sim.state.set_faults("magma", status=503)
    async with running_gateway(demo_settings(), sim_transport, clock) as gateway:
        report = (await gateway.query(BALANCES))["data"]["balances"]
    results = by_id(report)
    assert report["complete"] is False
    assert results["magma"]["__typename"] == "ProviderFailure"
    assert results["magma"]["code"] == "UPSTREAM_UNAVAILABLE"
    assert results["magma"]["retryable"] is True
    assert all(r["__typename"] == "AccountBalance" for k, r in results.items() if k != "magma")
    assert not any(t["currency"] == "GHS" for t in report["totals"])  # only Magma holds GHS


async def test_a_hung_account_fails_inside_the_request_deadline(
    sim: Simulator, sim_transport: httpx.AsyncBaseTransport, clock: FakeClock
) -> None:
    settings = with_account(demo_settings(), "paymob-eg", timeout_seconds=0.05)
    sim.state.set_faults("paymob-eg", hang=True)
    async with running_gateway(settings, sim_transport, clock) as gateway:
        results = by_id((await gateway.query(BALANCES))["data"]["balances"])
    assert results["paymob-eg"]["code"] == "UPSTREAM_TIMEOUT"
    assert results["muda-ug"]["__typename"] == "AccountBalance"


class Tamper(httpx.AsyncBaseTransport):
    """Replaces the body of one upstream path; everything else reaches the simulator."""

    def __init__(self, inner: httpx.AsyncBaseTransport, path: str, body: bytes) -> None:
        self.inner, self.path, self.body = inner, path, body

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        if request.url.path != self.path:
            return response
        await response.aclose()
        return httpx.Response(200, content=self.body, headers={"content-type": "application/json"})


@pytest.mark.parametrize(
    ("path", "body"),
    [
        (
            "/magma/v1/misc/balance",
            b'{"code": 200, "data": [{"code": "BJ", "currency": "XOF", "balance": NaN, "balance_available": 0}]}',
        ),
        (
            "/magma/v1/misc/balance",
            b'{"code": 200, "data": [{"code": "BJ", "currency": "XXX", "balance": 1, "balance_available": 0}]}',
        ),
        ("/magma/v1/misc/balance", b'{"code": 200, "data": {"BJ": 1}}'),
        (
            "/muda/v1/payment/balance",
            b'{"status": 200, "data": [{"asset_code": "UGX", "currency": "UGX", "balance": 4621.5}]}',
        ),
        ("/paymob/api/v1/balance/", b'{"amount_available": "1292.25", "available_commission": 1}'),
        (
            "/ourvoice/v1/current/balance",
            b'{"data": {"success": true, "data": "{\\"balance\\": 5"}}',
        ),
        ("/ourvoice/v1/current/balance", b"<html>502 Bad Gateway</html>"),
    ],
)
async def test_bad_upstream_bodies_become_coded_failures_in_place(
    path: str, body: bytes, sim_transport: httpx.AsyncBaseTransport, clock: FakeClock
) -> None:
    async with running_gateway(
        demo_settings(), Tamper(sim_transport, path, body), clock
    ) as gateway:
        result = await gateway.query(BALANCES)  # never a 500, never a float
    results = by_id(result["data"]["balances"])
    failures = {k: r["code"] for k, r in results.items() if r["__typename"] == "ProviderFailure"}
    assert set(failures.values()) == {"UPSTREAM_BAD_RESPONSE"}
    assert len(results) - len(failures) >= 3
    assert "NaN" not in json.dumps(result) and "http" not in json.dumps(result)


async def test_an_unknown_id_is_a_not_found_error_and_an_incomplete_report(
    sim_transport: httpx.AsyncBaseTransport, clock: FakeClock
) -> None:
    async with running_gateway(demo_settings(), sim_transport, clock) as gateway:
        result = await gateway.query(BALANCES, {"ids": ["muda-ug", "nope", "muda-ug"]})
    report = result["data"]["balances"]
    assert [r["account"]["id"] for r in report["results"]] == ["muda-ug"]
    assert report["complete"] is False
    (error,) = result["errors"]
    assert error["extensions"]["code"] == "NOT_FOUND"
    assert error["path"] == ["balances"]
    assert "nope" in error["message"]


async def test_providers_filter_and_account_lookups(
    sim_transport: httpx.AsyncBaseTransport, clock: FakeClock
) -> None:
    query = """{
      balances(providers: [OURVOICE]) { complete results { ... on AccountBalance { account { id } } } }
      accounts(provider: MUDA) { id label provider capabilities }
      account(id: "paymob-eg") { id balance { __typename ... on AccountBalance { balances { id } } } }
      missing: account(id: "nope") { id }
      countries { code name dialPrefix currency }
    }"""
    async with running_gateway(demo_settings(), sim_transport, clock) as gateway:
        data = (await gateway.query(query))["data"]
    assert [r["account"]["id"] for r in data["balances"]["results"]] == [
        "ourvoice-sn",
        "ourvoice-ci",
    ]
    assert data["balances"]["complete"] is True
    assert data["accounts"] == [
        {
            "id": "muda-ug",
            "label": "Muda Pay Uganda",
            "provider": "MUDA",
            "capabilities": ["BALANCE", "TRANSACTIONS"],
        }
    ]
    assert [b["id"] for b in data["account"]["balance"]["balances"]] == [
        "paymob-eg:available:EGP",
        "paymob-eg:commission:EGP",
    ]
    assert data["missing"] is None
    congo = next(c for c in data["countries"] if c["code"] == "CD")
    assert congo == {"code": "CD", "name": "DR Congo", "dialPrefix": "+243", "currency": "CDF"}


async def test_one_fetch_per_account_per_request(
    sim: Simulator, sim_transport: httpx.AsyncBaseTransport, clock: FakeClock
) -> None:
    query = """{ balances { complete } a: account(id: "magma") { balance { __typename } }
                 b: account(id: "magma") { balance { __typename } } }"""
    async with running_gateway(demo_settings(), sim_transport, clock) as gateway:
        await gateway.query(query)
    assert sim.state.calls_to("magma", "balance") == 1


async def test_introspection_and_graphiql_only_in_development(
    sim_transport: httpx.AsyncBaseTransport, clock: FakeClock
) -> None:
    development = demo_settings()
    prod = production(development)
    introspect = "{ __schema { queryType { name } } }"
    async with running_gateway(development, sim_transport, clock) as gateway:
        assert (await gateway.query(introspect))["data"]["__schema"]["queryType"]["name"] == "Query"
        page = await gateway.http.get("/graphql", headers={"accept": "text/html"})
        assert page.status_code == 200 and "graphiql" in page.text.lower()
    async with running_gateway(prod, sim_transport, clock) as gateway:
        result = await gateway.query(introspect)
        assert result.get("data") is None
        assert result["errors"][0]["extensions"]["code"] == "VALIDATION"
        page = await gateway.http.get("/graphql", headers={"accept": "text/html"})
        assert "graphiql" not in page.text.lower()


async def test_the_introspection_tools_send_first_works_in_development(
    sim_transport: httpx.AsyncBaseTransport, clock: FakeClock
) -> None:
    """GraphiQL's and graphql-inspector's first request: graphql-js' full introspection
    query (15 levels deep) — judged by introspection's own budget, not the depth limit of
    data queries, which still holds; production still refuses introspection."""
    full = get_introspection_query(
        descriptions=True,
        specified_by_url=True,
        directive_is_repeatable=True,
        schema_description=True,
        input_value_deprecation=True,
    )
    deeper = '{ __type(name: "Balance") { ' + "ofType { " * 20 + "name" + " }" * 21 + " }"
    data_too_deep = (
        "{ accounts { "
        + "balance { ... on AccountBalance { account { " * 5
        + "id"
        + " } } }" * 5
        + " } }"
    )
    async with running_gateway(demo_settings(), sim_transport, clock) as gateway:
        answer = await gateway.query(full)
        too_deep = await gateway.query(deeper)
        data = await gateway.query(data_too_deep)
    query_type = build_client_schema(answer["data"]).query_type
    assert query_type is not None and "balances" in query_type.fields  # GraphiQL's Docs
    assert "introspection query is 22 levels deep" in too_deep["errors"][0]["message"]
    assert "levels deep; at most 10" in data["errors"][0]["message"]
    async with running_gateway(production(demo_settings()), sim_transport, clock) as gateway:
        refused = await gateway.query(full)
    assert refused.get("data") is None
    assert refused["errors"][0]["extensions"]["code"] == "VALIDATION"


async def test_invalid_queries_get_coded_errors_not_500s(
    sim_transport: httpx.AsyncBaseTransport, clock: FakeClock
) -> None:
    async with running_gateway(demo_settings(), sim_transport, clock) as gateway:
        syntax = await gateway.query("{ balances { ")
        unknown = await gateway.query("{ nope }")
        variables = await gateway.query(BALANCES, {"providers": ["NOPE"]})
        health = await gateway.http.get("/healthz")
    for result in (syntax, unknown, variables):
        assert result["errors"][0]["extensions"]["code"] == "VALIDATION"
    assert health.status_code == 200


def test_schema_file_matches_the_code() -> None:
    assert (ROOT / "schema.graphql").read_text(encoding="utf-8") == sdl()


def test_export_schema_check_fails_on_drift(tmp_path: Any) -> None:
    target = tmp_path / "schema.graphql"
    assert cli_main(["export-schema", "--output", str(target)]) == 0
    assert cli_main(["export-schema", "--check", "--output", str(target)]) == 0
    target.write_text(target.read_text() + "\ntype Drift { x: Int }\n")
    assert cli_main(["export-schema", "--check", "--output", str(target)]) == 1


def test_an_unexpected_exception_is_masked_with_a_request_id() -> None:
    from graphql import GraphQLError

    from gateway.schema.errors import coded

    leaked = RuntimeError("boom at https://api.muda.tech with key demo-muda-secret-key")
    error = coded(GraphQLError("boom", original_error=leaked))
    assert error.message == "Internal error."
    assert error.extensions is not None
    assert error.extensions["code"] == "INTERNAL"
    assert len(error.extensions["requestId"]) == 16


async def test_cors_only_for_configured_origins(
    sim_transport: httpx.AsyncBaseTransport, clock: FakeClock
) -> None:
    settings = with_server(demo_settings(), cors_origins=("https://dash.example",))
    preflight = {
        "access-control-request-method": "POST",
        "access-control-request-headers": "content-type",
    }
    async with running_gateway(settings, sim_transport, clock) as gateway:
        allowed = await gateway.http.options(
            "/graphql", headers={"origin": "https://dash.example", **preflight}
        )
        other = await gateway.http.options(
            "/graphql", headers={"origin": "https://evil.example", **preflight}
        )
    assert allowed.headers["access-control-allow-origin"] == "https://dash.example"
    assert "access-control-allow-credentials" not in allowed.headers
    assert "access-control-allow-origin" not in other.headers


async def test_a_buggy_adapter_is_an_internal_failure_in_its_place(
    sim_transport: httpx.AsyncBaseTransport,
    clock: FakeClock,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from gateway.providers.magma_onepay import MagmaOnePay

    async def bug(self: object) -> tuple[object, ...]:
        raise ZeroDivisionError("a bug in an adapter")

    monkeypatch.setattr(MagmaOnePay, "fetch_balances", bug)
    async with running_gateway(demo_settings(), sim_transport, clock) as gateway:
        result = await gateway.query(BALANCES)
    results = by_id(result["data"]["balances"])
    magma = results["magma"]
    assert magma["__typename"] == "ProviderFailure" and magma["code"] == "INTERNAL"
    assert magma["retryable"] is False
    others = [r for k, r in results.items() if k != "magma"]
    assert others and all(r["__typename"] == "AccountBalance" for r in others)
    assert result["data"]["balances"]["complete"] is False
    assert "a bug in an adapter" not in json.dumps(result)
    assert any("ZeroDivisionError" in (r.exc_text or "") for r in caplog.records)
