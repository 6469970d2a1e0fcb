"""`/mcp` as agents use it: the official SDK's client over real HTTP (the app under
uvicorn) lists exactly the tools its key may use, calls every demo tool and gets the data
`/graphql` answers for the same document and variables; 50 concurrent identical top-ups
credit once; a key without the scope never sees the mutation, nor can call it; the gate
(credentials, rate, admission) is `/graphql`'s."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import re
import sys
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
from mcp import ClientSession, types
from mcp.client.streamable_http import streamable_http_client
from starlette.applications import Starlette

from gateway.access import SCOPES, RateLimit
from gateway.app import create_app
from gateway.config.documents import digest
from gateway.config.settings import Settings
from gateway.observability import log_format
from gateway.server.mcp import origin_allowed
from gateway.simulator import Simulator
from tests.helpers import (
    FULL_KEY,
    DelayTransport,
    FakeClock,
    Gate,
    client,
    credits,
    demo_settings,
    no_sleep,
    posts,
    production,
    refuse_float,
    sample,
    serving,
    with_section,
)
from tests.server.test_mcp_output import validator

READER = "bgw_mcp-reader-key-000000000000000000"  # balances and transactions, no top-ups
LEDGER = "bgw_mcp-ledger-key-111111111111111111"  # transactions only, one account
DEMO_TOOLS = [
    "AccountsBelowLevel",
    "BalancesAtAGlance",
    "RecentTransactions",
    "RunwaySoonestFirst",
    "TopUp",
]
# Each demo tool's arguments in the contract test (the top-up last: it changes a balance).
CALLS: dict[str, dict[str, Any]] = {
    "BalancesAtAGlance": {},
    "AccountsBelowLevel": {"level": "WARNING"},
    "RunwaySoonestFirst": {},
    "RecentTransactions": {"accountId": "muda-ug", "first": 5},
    "TopUp": {
        "accountId": "ourvoice-sn",
        "amount": "2500",
        "currency": "XOF",
        "paymentMethod": "MTN MOMO",
        "paymentReference": "PAY-MCP-1",
        "idempotencyKey": "mcp-contract-1",
    },
}


def mcp_settings(**server: Any) -> Settings:
    """The demo (its manifest: the demo tools) under the production profile, with a key
    of every scope, a reader's and a ledger's of one account."""
    settings = production(
        demo_settings(),
        client("full", FULL_KEY, SCOPES, None),
        client("reader", READER, ("balances:read", "transactions:read"), None),
        client("ledger", LEDGER, ("transactions:read",), ("muda-ug",)),
    )
    return with_section(settings, "server", **server) if server else settings


@dataclass
class Served:
    url: str
    app: Starlette

    def session(self, key: str | None = FULL_KEY) -> AbstractAsyncContextManager[ClientSession]:
        return mcp_session(f"{self.url}/mcp", key)


@asynccontextmanager
async def mcp_session(url: str, key: str | None) -> AsyncIterator[ClientSession]:
    """The SDK's own client, as an agent's host connects it: Streamable HTTP, its key in
    a header."""
    headers = {"X-API-Key": key} if key else {}
    async with (
        httpx.AsyncClient(headers=headers, timeout=30) as http,
        streamable_http_client(url, http_client=http) as (read, write, _),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        yield session


@asynccontextmanager
async def served(
    settings: Settings, transport: httpx.AsyncBaseTransport, clock: FakeClock
) -> AsyncIterator[Served]:
    app = create_app(settings, transport=transport, clock=clock, sleep=no_sleep)
    async with serving(app) as url:
        yield Served(url, app)


@pytest.fixture
async def gateway(
    sim_transport: httpx.AsyncBaseTransport, clock: FakeClock
) -> AsyncIterator[Served]:
    async with served(mcp_settings(), sim_transport, clock) as found:
        yield found


def text_of(result: types.CallToolResult) -> Any:
    (content,) = result.content
    assert isinstance(content, types.TextContent)
    return json.loads(content.text, parse_float=refuse_float)


async def test_the_sdk_client_lists_every_demo_tool_for_a_key_of_every_scope(
    gateway: Served,
) -> None:
    async with gateway.session() as session:
        listed = await session.list_tools()
    tools = {t.name: t for t in listed.tools}
    assert sorted(tools) == DEMO_TOOLS
    for name, tool in tools.items():
        assert tool.description and not tool.description.startswith(f"The {name} "), name
        assert tool.annotations is not None and tool.annotations.title == name
        meta = tool.meta or {}
        assert meta["balance-gateway/documentId"].startswith("sha256:")
        output = tool.outputSchema  # of the GraphQL `data`: an object of the root fields
        assert output is not None and output["type"] == "object", name
        jsonschema.Draft202012Validator.check_schema(output)
        if name == "TopUp":
            assert tool.annotations.readOnlyHint is False
            assert tool.annotations.destructiveHint is True
            assert tool.annotations.idempotentHint is False
        else:
            assert tool.annotations.readOnlyHint is True
    top_up = tools["TopUp"].inputSchema
    assert "idempotencyKey" in top_up["required"] and top_up["additionalProperties"] is False
    assert top_up["properties"]["amount"]["type"] == "string"  # exact decimals, never floats
    level = tools["AccountsBelowLevel"].inputSchema["properties"]["level"]
    assert level["enum"] == ["OK", "WARNING", "CRITICAL"] and level["default"] == "WARNING"
    result = tools["TopUp"].outputSchema["properties"]["topUp"]  # type: ignore[index]
    assert [m["properties"]["__typename"]["const"] for m in result["oneOf"]] == [
        "TopUpSucceeded",
        "TopUpPending",
        "TopUpRejected",
    ]


async def test_every_demo_tool_answers_the_data_graphql_answers_for_its_document(
    gateway: Served, sim: Simulator
) -> None:
    await contract(gateway.url, FULL_KEY)
    assert credits(sim) == 1


async def test_an_answer_with_a_provider_failing_in_place_is_one_the_output_schema_describes(
    gateway: Served, sim: Simulator, clock: FakeClock
) -> None:
    sim.state.set_faults("magma", status=503)
    clock.advance(3600)  # past every stale window: magma fails in place
    async with gateway.session() as session:  # which validates each answer against it
        tools = {t.name: t for t in (await session.list_tools()).tools}
        glance = await session.call_tool("BalancesAtAGlance", {})
        transactions = await session.call_tool("RecentTransactions", {"accountId": "magma"})
    for name, result in (("BalancesAtAGlance", glance), ("RecentTransactions", transactions)):
        assert result.isError is False, result.content
        validator(tools[name].outputSchema or {}).validate(result.structuredContent)
    results = (glance.structuredContent or {})["balances"]["results"]
    assert "ProviderFailure" in {r["__typename"] for r in results}
    assert (transactions.structuredContent or {})["transactions"]["__typename"] == (
        "ProviderFailure"
    )


async def test_an_answer_with_graphql_errors_is_a_tool_error_with_the_whole_answer_as_text(
    sim_transport: httpx.AsyncBaseTransport, clock: FakeClock
) -> None:
    """Errors beside partial `data` (an unknown account among known ones): a tool error,
    its text the whole GraphQL answer and no structured content — which the SDK's client
    would hold to the output schema, and it is the answer with errors, not `data` alone,
    that the agent must see."""
    some = (
        "# Some accounts' balances.\n"
        "query SomeBalances($ids: [ID!]) { balances(accountIds: $ids) "
        "{ complete results { __typename } } }"
    )
    demo = mcp_settings()
    documents = {**demo.documents.documents, digest(some): some}
    settings = dataclasses.replace(
        demo, documents=dataclasses.replace(demo.documents, documents=documents)
    )
    async with served(settings, sim_transport, clock) as gateway, gateway.session() as session:
        result = await session.call_tool("SomeBalances", {"ids": ["muda-ug", "nowhere"]})
    assert result.isError is True and result.structuredContent is None
    answer = text_of(result)
    assert [e["extensions"]["code"] for e in answer["errors"]] == ["NOT_FOUND"]
    assert answer["data"]["balances"]["complete"] is False
    assert answer["data"]["balances"]["results"][0]["__typename"] == "AccountBalance"


def still(data: Any) -> Any:
    """`data` with the instants a runway projects from now left out: under a clock that
    moves (a real `serve`), two reads a few milliseconds apart project apart too."""
    if isinstance(data, dict):
        return {k: None if k in ("zeroAt", "criticalAt") else still(v) for k, v in data.items()}
    if isinstance(data, list):
        return [still(v) for v in data]
    return data


async def contract(url: str, key: str | None, *, moving_clock: bool = False) -> None:
    """The contract: one call of each demo tool, and the same document (by its manifest
    id) with the same variables over `/graphql` — the tool's structured content is the
    GraphQL `data`, and its text the same JSON (`tests/system/test_mcp_serve.py` holds
    it against the real `serve`, too, whose clock moves: `still`)."""
    same = still if moving_clock else (lambda data: data)
    headers = {"X-API-Key": key} if key else {}
    async with (
        mcp_session(f"{url}/mcp", key) as session,
        httpx.AsyncClient(headers=headers) as http,
    ):
        tools = {t.name: t for t in (await session.list_tools()).tools}
        assert sorted(tools) == sorted(CALLS)
        for name, arguments in CALLS.items():
            result = await session.call_tool(name, arguments)
            assert result.isError is False, (name, result.content)
            document_id = (tools[name].meta or {})["balance-gateway/documentId"]
            # The top-up again over /graphql: the same key, so the same answer, replayed.
            request = {"documentId": document_id, "variables": arguments}
            answered = await http.post(f"{url}/graphql", json=request)
            assert answered.status_code == 200, answered.text
            answer = json.loads(answered.text, parse_float=refuse_float)
            assert "errors" not in answer, (name, answer)
            expected = answer["data"]
            if name == "TopUp":
                assert result.structuredContent == {
                    "topUp": {**expected["topUp"], "replayed": False}
                }
                assert expected["topUp"]["replayed"] is True
            else:
                assert same(result.structuredContent) == same(expected), name
            assert text_of(result) == result.structuredContent
            assert result.structuredContent, name  # something came back
            # what the SDK's client checked too, formats included
            validator(tools[name].outputSchema or {}).validate(result.structuredContent)


async def test_the_demo_tools_answer_what_their_names_promise(gateway: Served) -> None:
    async with gateway.session() as session:
        glance = (await session.call_tool("BalancesAtAGlance", {})).structuredContent
        below = (await session.call_tool("AccountsBelowLevel", {})).structuredContent
        critical = await session.call_tool("AccountsBelowLevel", {"level": "CRITICAL"})
        runway = (await session.call_tool("RunwaySoonestFirst", {})).structuredContent
        recent = await session.call_tool("RecentTransactions", {"accountId": "muda-ug"})
    assert glance is not None and glance["balances"]["complete"] is True
    assert below is not None
    (line,) = below["balances"]["balances"]  # the demo's one balance at WARNING
    assert line["account"]["id"] == "ourvoice-sn" and line["balance"]["level"] == "WARNING"
    assert critical.structuredContent == {"balances": {"balances": []}}
    assert runway is not None and len(runway["balances"]["balances"]) > 5
    edges = (recent.structuredContent or {})["transactions"]["edges"]
    assert 0 < len(edges) <= 10  # its default


async def test_50_concurrent_identical_top_up_calls_credit_once(
    sim: Simulator, sim_transport: httpx.AsyncBaseTransport, clock: FakeClock
) -> None:
    slow = DelayTransport(sim_transport, 0.05)  # the provider takes its time: they overlap
    # Room for all 50 at once (the adaptive limit of a loaded machine would shed some:
    # admission is another test's).
    settings = mcp_settings(admission="fixed")
    async with served(settings, slow, clock) as gateway, gateway.session() as session:
        results = await asyncio.gather(
            *(session.call_tool("TopUp", CALLS["TopUp"]) for _ in range(50))
        )
    assert not [r for r in results if r.isError or not r.structuredContent], results
    answers = [(r.structuredContent or {})["topUp"] for r in results]
    assert (posts(sim), credits(sim)) == (1, 1)
    assert {a["__typename"] for a in answers} == {"TopUpSucceeded"}
    assert sum(not a["replayed"] for a in answers) == 1
    assert len({a["transaction"]["id"] for a in answers}) == 1


async def test_a_key_without_the_scope_never_sees_the_mutation_nor_runs_it(
    gateway: Served, sim: Simulator
) -> None:
    async with gateway.session(READER) as session:
        listed = sorted(t.name for t in (await session.list_tools()).tools)
        refused = await session.call_tool("TopUp", CALLS["TopUp"])
        missing = await session.call_tool("NoSuchTool", {})
    assert listed == [name for name in DEMO_TOOLS if name != "TopUp"]
    assert refused.isError is True and missing.isError is True
    # exactly as a tool that does not exist (its arguments not even looked at)
    assert text_of(refused)["errors"][0]["extensions"] == {"code": "NOT_FOUND"}
    assert text_of(refused)["errors"][0]["message"] == "Unknown tool: TopUp"
    assert text_of(missing)["errors"][0]["message"] == "Unknown tool: NoSuchTool"
    assert (posts(sim), credits(sim)) == (0, 0)


async def test_a_key_sees_the_tools_of_its_scopes_and_its_accounts_only(
    gateway: Served,
) -> None:
    async with gateway.session(LEDGER) as session:
        listed = [t.name for t in (await session.list_tools()).tools]
        own = await session.call_tool("RecentTransactions", {"accountId": "muda-ug"})
        other = await session.call_tool("RecentTransactions", {"accountId": "magma"})
        glance = await session.call_tool("BalancesAtAGlance", {})
    assert listed == ["RecentTransactions"]
    assert (own.structuredContent or {})["transactions"]["__typename"] == "TransactionConnection"
    # an account it may not see is one that does not exist, as on /graphql
    assert other.isError is True and other.structuredContent is None
    (error,) = text_of(other)["errors"]
    assert (error["message"], error["extensions"]) == ("No account 'magma'.", {"code": "NOT_FOUND"})
    assert glance.isError is True


async def test_the_idempotency_key_is_the_callers_never_one_the_server_makes_up(
    gateway: Served, sim: Simulator
) -> None:
    without = {k: v for k, v in CALLS["TopUp"].items() if k != "idempotencyKey"}
    async with gateway.session() as session:
        result = await session.call_tool("TopUp", without)
        extra = await session.call_tool("TopUp", {**CALLS["TopUp"], "dryRun": True})
    assert result.isError is True and result.structuredContent is None
    (error,) = text_of(result)["errors"]
    assert "$idempotencyKey" in error["message"]
    assert error["extensions"]["code"] == "VALIDATION"
    assert extra.isError is True
    assert text_of(extra)["errors"][0]["message"] == "TopUp takes no dryRun."
    assert (posts(sim), credits(sim)) == (0, 0)


async def test_bad_credentials_are_refused_before_the_sdk_reads_anything(
    gateway: Served,
) -> None:
    message = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
    headers = {"accept": "application/json, text/event-stream"}
    async with httpx.AsyncClient(base_url=gateway.url, headers=headers) as http:
        nobody = await http.post("/mcp", json=message)
        wrong = await http.post("/mcp", json=message, headers={"X-API-Key": "bgw_wrong"})
        get = await http.get("/mcp", headers={"X-API-Key": FULL_KEY})
        listed = await http.post("/mcp", json=message, headers={"X-API-Key": FULL_KEY})
    for refused in (nobody, wrong):
        assert refused.status_code == 401
        assert refused.json() == {
            "jsonrpc": "2.0",
            "id": None,
            "error": {
                "code": -32000,
                "message": "Missing or invalid credentials.",
                "data": {"code": "UNAUTHENTICATED"},
            },
        }
    assert get.status_code == 405 and get.headers["allow"] == "POST"
    # stateless: a tools/list needs no initialize first (curl can ask)
    assert listed.status_code == 200 and listed.headers["cache-control"] == "no-store"
    assert len(listed.json()["result"]["tools"]) == len(DEMO_TOOLS)


async def test_the_client_rate_is_the_graphql_one(
    sim_transport: httpx.AsyncBaseTransport, clock: FakeClock
) -> None:
    settings = mcp_settings()
    slow = dataclasses.replace(settings.security, rate_limit=RateLimit(0.001, 3))
    message = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
    headers = {"accept": "application/json", "X-API-Key": READER}
    async with (
        served(dataclasses.replace(settings, security=slow), sim_transport, clock) as gateway,
        httpx.AsyncClient(base_url=gateway.url, headers=headers) as http,
    ):
        statuses = [(await http.post("/mcp", json=message)).status_code for _ in range(3)]
        graphql = await http.post("/graphql", json={"query": "{ countries { code } }"})
        limited = await http.post("/mcp", json=message)
    assert statuses == [200, 200, 200]
    assert graphql.status_code == 429  # one bucket for both paths
    assert limited.status_code == 429 and limited.headers["retry-after"]
    assert limited.json()["error"]["data"] == {"code": "RATE_LIMITED"}


async def test_a_tool_call_is_shed_as_graphql_requests_are(
    sim_transport: httpx.AsyncBaseTransport, clock: FakeClock
) -> None:
    settings = mcp_settings(max_concurrent_requests=1, max_queued_requests=0)
    async with served(settings, sim_transport, clock) as gateway, gateway.session() as session:
        admission = gateway.app.state.admission
        assert admission.try_enter("query")  # the one slot: taken
        try:
            shed = await session.call_tool("BalancesAtAGlance", {})
            call = {"name": "BalancesAtAGlance", "arguments": {}}
            message = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": call}
            headers = {"accept": "application/json", "X-API-Key": FULL_KEY}
            async with httpx.AsyncClient(base_url=gateway.url, headers=headers) as http:
                raw = await http.post("/mcp", json=message)
        finally:
            admission.release("query")
        answered = await session.call_tool("BalancesAtAGlance", {})
    assert raw.json()["result"]["isError"] is True
    assert 1 <= int(raw.headers["retry-after"]) <= 3  # when to call again, as a 503 says
    assert shed.isError is True
    assert text_of(shed)["errors"][0]["extensions"]["code"] == "OVERLOADED"
    assert answered.isError is False


async def test_the_access_line_names_the_tools_operation(
    gateway: Served, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="gateway.access"):
        async with gateway.session(READER) as session:
            await session.call_tool("BalancesAtAGlance", {})
            await session.call_tool("TopUp", CALLS["TopUp"])  # not the reader's
    lines = [r.getMessage() for r in caplog.records if r.name == "gateway.access"]
    assert any(line.endswith(" client_error") for line in lines), lines
    (record,) = [
        r
        for r in caplog.records
        if r.name == "gateway.access" and "query BalancesAtAGlance" in r.getMessage()
    ]
    line = record.getMessage()
    assert line.startswith('"POST /mcp" 200') and line.endswith(" ok"), line
    assert getattr(record, "client", None) == "reader"


async def test_mcp_requests_are_counted_in_the_request_metrics_by_tool(
    gateway: Served,
) -> None:
    """Every POST to `/mcp` is a request in `gateway_requests_total`: a tool call named by
    its tool (`mcp:<name>`, as the manifest names it), anything else — the handshake,
    `tools/list`, a tool that does not exist, a refusal at the gate — `mcp:-`; and each
    is timed in the request-duration histogram."""
    async with gateway.session(READER) as session:
        await session.call_tool("BalancesAtAGlance", {})
        await session.call_tool("RecentTransactions", {"accountId": "nowhere"})
        await session.call_tool("NoSuchTool", {"ignored": "x" * 200})
    message = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
    headers = {"accept": "application/json, text/event-stream", "X-API-Key": FULL_KEY}
    async with httpx.AsyncClient(base_url=gateway.url, headers=headers) as http:
        refused = await http.post("/mcp", json=message, headers={"X-API-Key": "bgw_wrong"})
        text = (await http.get("/metrics")).text
    assert refused.status_code == 401

    def requests(kind: str, name: str, outcome: str, reason: str = "") -> float:
        labels = {"operation_type": kind, "operation_name": name, "reason": reason}
        return sample(text, "gateway_requests_total", outcome=outcome, **labels)

    assert requests("query", "mcp:BalancesAtAGlance", "ok") == 1
    assert requests("query", "mcp:RecentTransactions", "client_error") == 1  # NOT_FOUND
    assert requests("unknown", "mcp:-", "client_error") == 1  # the unknown tool
    assert requests("unknown", "mcp:-", "refused", "unauthenticated") == 1
    assert requests("unknown", "mcp:-", "ok") >= 3  # initialize, initialized, tools/list
    assert "NoSuchTool" not in text  # what a caller typed never becomes a label value
    count = "gateway_request_duration_seconds_count"
    assert sample(text, count, operation_type="query", outcome="ok") == 1  # the tool call


async def test_a_tool_call_is_a_graphql_request_in_flight_while_it_runs(
    sim_transport: httpx.AsyncBaseTransport, clock: FakeClock
) -> None:
    gate = Gate(sim_transport)
    async with (
        served(mcp_settings(), gate, clock) as gateway,
        gateway.session() as session,
        httpx.AsyncClient(base_url=gateway.url, headers={"X-API-Key": FULL_KEY}) as http,
    ):
        call = asyncio.create_task(session.call_tool("BalancesAtAGlance", {}))
        try:
            async with asyncio.timeout(20):
                await gate.entered.wait()
            running = sample((await http.get("/metrics")).text, "gateway_graphql_in_flight")
        finally:
            gate.opened.set()
        answered = await call
        after = sample((await http.get("/metrics")).text, "gateway_graphql_in_flight")
    assert answered.isError is False
    assert (running, after) == (1, 0)


async def test_a_manifest_document_that_is_no_tool_is_said_at_start_and_not_listed(
    sim_transport: httpx.AsyncBaseTransport, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    anonymous = "{ countries { code } }"
    demo = mcp_settings()
    documents = {**demo.documents.documents, digest(anonymous): anonymous}
    settings = dataclasses.replace(
        demo, documents=dataclasses.replace(demo.documents, documents=documents)
    )
    with caplog.at_level(logging.WARNING, logger="gateway.mcp"):
        async with served(settings, sim_transport, clock) as gateway, gateway.session() as session:
            listed = sorted(t.name for t in (await session.list_tools()).tools)
    assert listed == DEMO_TOOLS
    (said,) = [r.getMessage() for r in caplog.records if r.name == "gateway.mcp"]
    assert said.startswith(f"MCP: not a tool: document sha256:{digest(anonymous)[:12]}")
    assert said.endswith("its operation has no name: a tool is named by it")


@pytest.mark.parametrize(("levels", "sdk_lines"), [((), False), ((("mcp", "info"),), True)])
async def test_the_sdks_lines_stay_out_of_the_log_unless_asked_for(
    sim_transport: httpx.AsyncBaseTransport,
    clock: FakeClock,
    tmp_path: Path,
    levels: tuple[tuple[str, str], ...],
    sdk_lines: bool,
) -> None:
    """At the default level the SDK's own line per request ("Processing request of type
    CallToolRequest", …) is not written, the gateway's access line is; `[logging] levels`
    still brings them back."""
    stream = (tmp_path / "log").open("w+", encoding="utf-8")
    try:
        log_format.configure("info", "text", levels, stream)
        async with (
            served(mcp_settings(), sim_transport, clock) as gateway,
            gateway.session() as session,
        ):
            await session.call_tool("BalancesAtAGlance", {})
        stream.seek(0)
        written = stream.read()
    finally:
        log_format.configure("warning", stream=sys.__stderr__)  # never a closed one
        stream.close()
    assert logging.getLogger("mcp").level == logging.WARNING  # quiet again, once reconfigured
    assert re.search(
        r' INFO gateway\.access \[\S+ full\] "POST /mcp" 200 .* BalancesAtAGlance', written
    )
    sdk = re.findall(r" INFO (mcp\.\S+) .*", written)
    assert bool(sdk) is sdk_lines, written
    if sdk_lines:
        assert "mcp.server.lowlevel.server" in sdk


LIST = b'{"jsonrpc": "2.0", "id": 1, "method": "tools/list"}'


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (b'{"jsonrpc": "2.0", "id": 1, "method": "tools/list", "x": "\xff"}', "not UTF-8"),
        (b'{"jsonrpc": "2.0", "id": 1' + b"0" * 5000 + b', "method": "ping"}', "a huge number"),
        (b'{"jsonrpc": "2.0", "id": 1, "params": ' + b"[" * 50_000 + b"]" * 50_000 + b"}", "deep"),
        (
            b'{"jsonrpc": "2.0", "id": 1, "method": "ping", "params": '
            + b"[" * 40
            + b"]" * 40
            + b"}",
            "deep",
        ),
        (b'{"jsonrpc": "2.0", "id": 1, "method": "ping"', "cut short"),
    ],
)
async def test_a_body_the_sdk_could_not_read_is_a_parse_error_never_a_500(
    gateway: Served, caplog: pytest.LogCaptureFixture, body: bytes, why: str
) -> None:
    headers = {"content-type": "application/json", "accept": "application/json"}
    with caplog.at_level(logging.INFO):
        async with httpx.AsyncClient(base_url=gateway.url, headers=headers) as http:
            answer = await http.post("/mcp", content=body, headers={"X-API-Key": FULL_KEY})
    assert answer.status_code == 400, why
    error = answer.json()["error"]
    assert error["code"] == -32700 and error["data"] == {"code": "VALIDATION"}
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    (line,) = [r.getMessage() for r in caplog.records if r.name == "gateway.access"]
    assert line.startswith('"POST /mcp" 400') and "bad_request" in line


async def test_a_body_is_read_as_graphql_reads_one(
    sim_transport: httpx.AsyncBaseTransport, clock: FakeClock
) -> None:
    """Its media type, its encoding, and its time: a client trickling its body is cut at
    `body_timeout_seconds` (408), as on /graphql — never a connection held for ever."""
    settings = mcp_settings(body_timeout_seconds=0.2)
    headers = {"accept": "application/json", "X-API-Key": FULL_KEY}
    async with (
        served(settings, sim_transport, clock) as gateway,
        httpx.AsyncClient(base_url=gateway.url, headers=headers) as http,
    ):
        plain = await http.post("/mcp", content=LIST, headers={"content-type": "text/plain"})
        zipped = await http.post(
            "/mcp",
            content=LIST,
            headers={"content-type": "application/json", "content-encoding": "gzip"},
        )

        slow = await trickled(gateway.url, LIST[:10], len(LIST))
    assert plain.status_code == 415 and zipped.status_code == 415
    assert slow.startswith(b"HTTP/1.1 408 ")
    assert b'"message":"The request body did not arrive within 0.2 s."' in slow


async def trickled(url: str, part: bytes, length: int) -> bytes:
    """What the server answers a POST to /mcp announcing `length` bytes and sending only
    `part` of them (within 10 s)."""
    host, port = httpx.URL(url).host, httpx.URL(url).port
    assert port is not None
    reader, writer = await asyncio.open_connection(host, port)
    head = (
        f"POST /mcp HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        f"Accept: application/json\r\nX-API-Key: {FULL_KEY}\r\nContent-Length: {length}\r\n\r\n"
    )
    try:
        writer.write(head.encode() + part)
        await writer.drain()
        async with asyncio.timeout(10):
            return await reader.read(65536)
    finally:
        writer.close()


@pytest.mark.parametrize(
    ("origin", "status"),
    [
        (None, 200),  # an MCP client, not a browser
        ("http://localhost:6274", 200),  # a local inspector
        ("http://127.0.0.1:3000", 200),
        ("http://[::1]:3000", 200),
        ("https://ops.example", 200),  # named in cors_origins
        ("http://evil.example:8000", 403),  # a rebinding page: its name resolved to us
        ("null", 403),
        ("https://ops.example.evil", 403),
    ],
)
async def test_a_browser_page_of_another_origin_is_refused(
    sim_transport: httpx.AsyncBaseTransport, clock: FakeClock, origin: str | None, status: int
) -> None:
    settings = mcp_settings(cors_origins=["https://ops.example"])
    headers = {"accept": "application/json", "content-type": "application/json"}
    headers |= {"X-API-Key": FULL_KEY} | ({"origin": origin} if origin else {})
    async with (
        served(settings, sim_transport, clock) as gateway,
        httpx.AsyncClient(base_url=gateway.url, headers=headers) as http,
    ):
        answer = await http.post("/mcp", content=LIST)
    assert answer.status_code == status
    if status == 403:
        assert answer.json()["error"]["data"] == {"code": "FORBIDDEN"}


async def test_a_message_the_sdk_refuses_is_a_client_error_and_its_words_are_not_logged(
    gateway: Served, caplog: pytest.LogCaptureFixture
) -> None:
    """The SDK logs a message it cannot validate through the root logger, with what the
    client sent (here an idempotency key); none of it is written, and the access line
    counts the refusal as the client's."""
    call = {
        "jsonrpc": "2.0",
        "id": 7,
        "method": "tools/call",
        "params": {"name": "TopUp", "arguments": "idempotencyKey=secret-looking-key-42"},
    }
    headers = {"accept": "application/json", "X-API-Key": FULL_KEY}
    with caplog.at_level(logging.DEBUG):
        async with httpx.AsyncClient(base_url=gateway.url, headers=headers) as http:
            answer = await http.post("/mcp", json=call)
    assert answer.json()["error"]["code"] == -32602
    assert not [r for r in caplog.records if "secret-looking-key-42" in r.getMessage()]
    (line,) = [r.getMessage() for r in caplog.records if r.name == "gateway.access"]
    assert line.endswith(" client_error"), line


async def test_a_response_posted_by_a_client_is_refused_before_the_sdk_logs_it(
    gateway: Served, caplog: pytest.LogCaptureFixture
) -> None:
    """A stateless server asks its clients nothing: a JSON-RPC response or error sent to
    it is refused (400, a parse error) — the SDK would log it whole, at ERROR."""
    headers = {"accept": "application/json", "X-API-Key": FULL_KEY}
    result = {"jsonrpc": "2.0", "id": 5, "result": {"secret": "SECRET-RESP-" + "A" * 5000}}
    error = {"jsonrpc": "2.0", "id": 6, "error": {"code": 1, "message": "SECRET-RESP-B"}}
    with caplog.at_level(logging.INFO):
        async with httpx.AsyncClient(base_url=gateway.url, headers=headers) as http:
            answers = [await http.post("/mcp", json=body) for body in (result, error)]
            mixed = await http.post(
                "/mcp", json=LIST_MESSAGE, headers={"content-type": "Application/JSON"}
            )
    for answer in answers:
        assert answer.status_code == 400 and answer.json()["error"]["code"] == -32700
    assert not [r for r in caplog.records if "SECRET-RESP" in r.getMessage()]
    assert mixed.status_code == 200 and mixed.json()["result"]["tools"]  # as /graphql takes it


LIST_MESSAGE = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}


@pytest.mark.parametrize(
    "origin",
    ["http://evil.example@localhost", "http://localhost:evil", "http://localhost/x"],
)
def test_an_origin_no_browser_sends_is_not_loopback(origin: str) -> None:
    assert not origin_allowed(origin, frozenset())
    assert origin_allowed("http://LOCALHOST:6274/", frozenset())
