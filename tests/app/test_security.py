"""Attacks and their safe outcomes, under the production profile. Every refused request
leaves the simulator's call counters at zero."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator

import httpx
import pytest

from gateway.config.security import RequestLimits
from gateway.schema.execution.limits import _Measure
from gateway.simulator import Simulator
from tests.helpers import (
    FakeClock,
    GatewayClient,
    demo_settings,
    production,
    running_gateway,
)

COUNTRIES = "{ countries { code } }"  # answered without any upstream call
# What every refusal below would run if it were let through: it calls every upstream, so
# "no upstream call" is something each of those tests can fail.
WOULD_CALL = "{ balances { complete } }"


@pytest.fixture
async def gw(
    sim_transport: httpx.AsyncBaseTransport, clock: FakeClock
) -> AsyncIterator[GatewayClient]:
    async with running_gateway(production(demo_settings()), sim_transport, clock) as gateway:
        yield gateway


def codes(response: httpx.Response) -> list[str]:
    return [e["extensions"]["code"] for e in response.json()["errors"]]


def assert_untouched(sim: Simulator) -> None:
    assert sum(sim.state.calls.values()) == 0, dict(sim.state.calls)


async def test_introspection_and_suggestions_are_off_in_production(
    gw: GatewayClient, sim: Simulator
) -> None:
    introspection = await gw.post("{ __schema { types { name } } }")
    typo = await gw.post("{ balancs { complete } }")
    assert set(codes(introspection)) == {"VALIDATION"}
    assert introspection.json().get("data") is None
    assert "Did you mean" not in typo.text and codes(typo) == ["VALIDATION"]
    assert_untouched(sim)


async def test_suggestions_help_in_development(
    sim_transport: httpx.AsyncBaseTransport, clock: FakeClock
) -> None:
    async with running_gateway(demo_settings(), sim_transport, clock) as gateway:
        assert "Did you mean" in (await gateway.post("{ balancs { complete } }")).text


def exponential_fragments(levels: int = 20) -> str:
    fragments = [f"fragment F{i} on Query {{ ...F{i + 1} ...F{i + 1} }}" for i in range(levels - 1)]
    fragments.append(f"fragment F{levels - 1} on Query {{ a: balances {{ complete }} }}")
    return "query { ...F0 } " + " ".join(fragments)


async def test_the_exponential_fragment_document_is_refused(
    gw: GatewayClient, sim: Simulator
) -> None:
    response = await gw.post(exponential_fragments())
    assert codes(response) == ["VALIDATION"]
    assert "524288 aliases" in response.text  # counted through every spread…
    assert_untouched(sim)


def test_each_fragment_is_measured_once() -> None:
    from graphql import parse

    measured: list[str] = []

    class Counting(_Measure):
        def fragment(self, name: str):  # type: ignore[no-untyped-def]
            if name not in self.done:
                measured.append(name)
            return super().fragment(name)

    shape = Counting(parse(exponential_fragments())).selection_set(
        parse(exponential_fragments()).definitions[0].selection_set  # type: ignore[attr-defined]
    )
    assert shape.aliases == 2**19
    assert sorted(measured) == sorted(f"F{i}" for i in range(20))  # …yet each walked once


@pytest.mark.parametrize(
    ("query", "fragment"),
    [
        (
            "{ " + " ".join(f"a{i}: balances {{ complete }}" for i in range(101)) + " }",
            "101 aliases",
        ),
        (
            "{ ...A ...A ...A ...A ...A ...A ...A } fragment A on Query { "
            + " ".join(f"x{i}: balances {{ complete }}" for i in range(5))
            + " }",
            "35 aliases",
        ),
        ("{ ...A } fragment A on Query { ...B } fragment B on Query { ...A }", "spread"),
        (
            "{ accounts { "
            + "balance { ... on AccountBalance { account { " * 5
            + "id"
            + " } } }" * 5
            + " } }",
            "levels deep",
        ),
    ],
    ids=["101-aliases", "aliases-through-fragments", "circular-fragments", "too-deep"],
)
async def test_abusive_documents_are_refused_before_any_upstream_call(
    query: str, fragment: str, gw: GatewayClient, sim: Simulator
) -> None:
    response = await gw.post(query)
    assert response.status_code == 200
    assert response.json().get("data") is None
    assert fragment in response.text
    assert_untouched(sim)


async def test_directive_overloading_keeps_the_error_list_short(
    gw: GatewayClient, sim: Simulator
) -> None:
    for directive, count in (("@skip(if: false) ", 250), ("@nope ", 900), ("@deprecated ", 900)):
        response = await gw.post("{ balances " + directive * count + "{ complete } }")
        errors = response.json()["errors"]
        assert (
            len(errors) == RequestLimits().max_errors == 5
        )  # small by default, not one per directive
        assert {e["extensions"]["code"] for e in errors} == {"VALIDATION"}
    assert_untouched(sim)


async def test_a_document_over_the_token_limit_is_refused(
    gw: GatewayClient, sim: Simulator
) -> None:
    response = await gw.post("{ " + "balances { complete } " * 600 + "}")
    assert codes(response) == ["VALIDATION"]
    assert_untouched(sim)


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("application/x-www-form-urlencoded", b"query=%7B%20balances%20%7B%20complete%20%7D%20%7D"),
        (
            "multipart/form-data; boundary=x",
            b'--x\r\nContent-Disposition: form-data; name="query"\r\n\r\n{ balances { complete } }\r\n--x--\r\n',
        ),
        ("text/plain", b'{"query": "{ balances { complete } }"}'),
        (None, b'{"query": "{ balances { complete } }"}'),
    ],
)
async def test_only_json_bodies_are_accepted(
    content_type: str | None, body: bytes, gw: GatewayClient, sim: Simulator
) -> None:
    headers = {"content-type": content_type} if content_type else {}
    response = await gw.http.post("/graphql", content=body, headers=headers)
    assert response.status_code == 415 and codes(response) == ["VALIDATION"]
    assert_untouched(sim)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'[{"query": "{ balances { complete } }"}]', "Batched"),
        (b'{"query": "{ balances { complete } ', "not valid JSON"),
        (b'{"query": 5}', "must be a string"),
        (b'{"query": "{ balances { complete } }", "variables": [1]}', "must be an object"),
        (
            b'{"query": "query($v: String) { balances { complete } }", "variables": {"v": '
            + b"[" * 5000
            + b"]" * 5000
            + b"}}",
            "",
        ),
        (
            b'{"query": "query($v: String) { balances { complete } }", "variables": {"v": '
            + b'{"a": ' * 30
            + b"1"
            + b"}" * 30
            + b"}}",
            "nest deeper",
        ),
    ],
    ids=["batch", "truncated", "query-number", "variables-list", "nested-5000", "nested-30"],
)
async def test_malformed_requests_are_400_never_500(
    body: bytes, message: str, gw: GatewayClient, sim: Simulator
) -> None:
    response = await gw.http.post(
        "/graphql", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert codes(response) == ["VALIDATION"] and message in response.text
    assert_untouched(sim)


async def test_an_unknown_operation_name_is_a_coded_error(
    gw: GatewayClient, sim: Simulator
) -> None:
    response = await gw.http.post(
        "/graphql", json={"query": "query A { balances { complete } }", "operationName": "B"}
    )
    assert response.status_code < 500
    assert codes(response) == ["VALIDATION"]
    assert_untouched(sim)


async def test_a_5_mb_body_is_refused_with_and_without_content_length(
    gw: GatewayClient, sim: Simulator
) -> None:
    big = b'{"query": "' + b" " * (5 * 1024 * 1024) + b'{ balances { complete } }"}'
    declared = await gw.http.post(
        "/graphql", content=big, headers={"content-type": "application/json"}
    )

    sent: list[int] = []

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(big), 64 * 1024):
            sent.append(start)
            yield big[start : start + 64 * 1024]

    streamed = await gw.http.post(
        "/graphql", content=chunks(), headers={"content-type": "application/json"}
    )
    assert declared.status_code == streamed.status_code == 413
    # It stopped reading just past the 256 KiB cap: 5 of the 80 chunks, not the rest.
    assert len(sent) <= 256 // 64 + 1
    assert codes(declared) == codes(streamed) == ["VALIDATION"]
    assert_untouched(sim)


async def test_queries_over_get_are_off_and_mutations_never_go_over_get(
    sim: Simulator, sim_transport: httpx.AsyncBaseTransport, clock: FakeClock
) -> None:
    async with running_gateway(production(demo_settings()), sim_transport, clock) as gateway:
        refused = await gateway.http.get("/graphql", params={"query": WOULD_CALL})
        bare = await gateway.http.get("/graphql")  # no query: still the GET refusal first
    settings = production(demo_settings())
    settings = dataclasses.replace(
        settings,
        security=dataclasses.replace(
            settings.security, limits=dataclasses.replace(settings.security.limits, allow_get=True)
        ),
    )
    async with running_gateway(settings, sim_transport, clock) as gateway:
        allowed = await gateway.http.get("/graphql", params={"query": COUNTRIES})
        mutation = await gateway.http.get("/graphql", params={"query": "mutation { topUp }"})
    assert refused.status_code == 405 and refused.headers["allow"] == "POST"
    (error,) = refused.json()["errors"]
    assert "allow_get" in error["message"] and error["extensions"]["code"] == "VALIDATION"
    assert bare.status_code == 405 and "allow_get" in bare.json()["errors"][0]["message"]
    assert allowed.status_code == 200 and allowed.json()["data"]["countries"]
    assert mutation.status_code >= 400
    assert_untouched(sim)


async def test_every_answer_is_no_store(gw: GatewayClient) -> None:
    ok = await gw.post(COUNTRIES)
    refused = await gw.http.post("/graphql", content=b"x", headers={"content-type": "text/plain"})
    unauthenticated = await gw.as_key(None).post(COUNTRIES)
    for response in (ok, refused, unauthenticated):
        assert response.headers["cache-control"] == "no-store"
        assert len(response.headers["x-request-id"]) == 16


async def test_websocket_subscriptions_are_not_served(gw: GatewayClient) -> None:
    """A WebSocket handshake on /graphql is closed at once, never accepted."""
    sent: list[dict[str, object]] = []

    async def receive() -> dict[str, object]:
        return {"type": "websocket.connect"}

    async def send(message: dict[str, object]) -> None:
        sent.append(message)

    scope = {
        "type": "websocket",
        "path": "/graphql",
        "raw_path": b"/graphql",
        "query_string": b"",
        "headers": [(b"sec-websocket-protocol", b"graphql-transport-ws")],
        "subprotocols": ["graphql-transport-ws"],
        "scheme": "ws",
        "root_path": "",
        "server": ("gateway", 80),
        "client": ("127.0.0.1", 1),
        "asgi": {"version": "3.0"},
    }
    await gw.app(scope, receive, send)
    assert [m["type"] for m in sent] == ["websocket.close"]
