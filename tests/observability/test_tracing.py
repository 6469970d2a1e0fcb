"""Traces through the SDK's in-memory exporter: the span tree of one request, the caller's
trace continued and passed on to every provider, retries as attempts, and no secret or
amount in any attribute."""

from __future__ import annotations

import dataclasses
from typing import Any

import httpx
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from gateway.app import create_app
from gateway.config.operations import TracingSettings
from gateway.observability.tracing import OpenTelemetryTracing, TracedRequests
from gateway.simulator import Simulator
from tests.helpers import (
    FULL_KEY,
    TOP_UP,
    FakeClock,
    Recording,
    demo_settings,
    no_sleep,
    production,
    topup,
)

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{CALLER_SPAN}-01"
ACCOUNTS = ["ourvoice-sn", "magma", "muda-ug", "paymob-eg"]
QUERY = f"query Dashboard {{ balances(accountIds: {str(ACCOUNTS).replace(chr(39), chr(34))}) {{ complete results {{ __typename }} }} }}"


async def traced(
    sim: Simulator, clock: FakeClock, *requests: dict[str, Any], include_document: bool = False
) -> tuple[list[ReadableSpan], Recording, list[httpx.Response]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    settings = production(demo_settings())
    settings = dataclasses.replace(
        settings, tracing=TracingSettings(enabled=True, include_document=include_document)
    )
    upstream = Recording(httpx.ASGITransport(app=sim.app))
    app = create_app(
        settings, transport=upstream, clock=clock, sleep=no_sleep, tracer_provider=provider
    )
    headers = {"authorization": f"Bearer {FULL_KEY}", "traceparent": TRACEPARENT}
    answers = []
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://g") as http,
    ):
        for body in requests:
            answers.append(await http.post("/graphql", json=body, headers=headers))
    return list(exporter.get_finished_spans()), upstream, answers


def attribute_text(spans: list[ReadableSpan]) -> str:
    return "\n".join(f"{s.name} {k}={v!s}" for s in spans for k, v in (s.attributes or {}).items())


async def test_a_balances_request_is_one_server_span_over_a_client_span_per_upstream_call(
    sim: Simulator, clock: FakeClock
) -> None:
    spans, upstream, (answer,) = await traced(sim, clock, {"query": QUERY})
    assert answer.json()["data"]["balances"]["complete"] is True
    (server,) = [s for s in spans if s.kind is SpanKind.SERVER]
    clients = [s for s in spans if s.kind is SpanKind.CLIENT]
    assert server.name == "query Dashboard"  # {graphql.operation.type} {graphql.operation.name}
    assert format(server.context.trace_id, "032x") == TRACE_ID  # the caller's trace, continued
    assert server.parent is not None and format(server.parent.span_id, "016x") == CALLER_SPAN
    attributes = dict(server.attributes or {})
    assert attributes["graphql.operation.type"] == "query"
    assert attributes["graphql.operation.name"] == "Dashboard"
    assert "graphql.document" not in attributes  # only when configured
    assert attributes["http.response.status_code"] == 200
    assert attributes["balance_gateway.accounts"] == 4
    assert attributes["balance_gateway.cache.misses"] == 4
    assert attributes["balance_gateway.upstream_calls"] == 5 == len(clients)
    assert attributes["balance_gateway.outcome"] == "ok"

    # One CLIENT span per upstream attempt — the four balances and Muda's token — each a
    # child of the server span, each passed to its provider as the parent of its request.
    assert {s.parent.span_id for s in clients if s.parent} == {server.context.span_id}
    assert sorted(str((s.attributes or {})["balance_gateway.account"]) for s in clients) == sorted(
        [*ACCOUNTS, "muda-ug"]
    )
    for span in clients:
        assert span.name in ("GET", "POST")
        assert (span.attributes or {})["http.response.status_code"] == 200
        assert (span.attributes or {})["balance_gateway.attempt"] == 1
        assert (span.attributes or {})["balance_gateway.outcome"] == "ok"
    sent = {r.headers["traceparent"] for r in upstream.requests}
    assert sent == {f"00-{TRACE_ID}-{s.context.span_id:016x}-01" for s in clients}

    text = attribute_text(spans)
    for secret in (FULL_KEY, "demo-magma-private-key", "demo-muda-secret-key", "demo-paymob"):
        assert secret not in text
    for amount in ("50000", "4621", "1292.25"):  # balances the simulator holds
        assert amount not in text


async def test_retries_are_attempts_with_their_wait_and_a_document_has_no_literals(
    sim: Simulator, clock: FakeClock
) -> None:
    sim.state.set_faults("magma", status=503)
    inline = TOP_UP.replace("$input: TopUpInput!", "").replace("mutation()", "mutation")
    inline = inline.replace(
        "input: $input",
        'input: {accountId: "ourvoice-sn", amount: "7777", paymentMethod: "MTN MOMO", '
        'paymentReference: "PAY-SECRET-REF", idempotencyKey: "trace-2"}',
    )
    spans, _, answers = await traced(
        sim,
        clock,
        {"query": '{ balances(accountIds: ["magma"]) { complete } }'},
        {"query": TOP_UP, "variables": topup("trace-1", amount="2500")},
        {"query": inline},
        include_document=True,
    )
    assert answers[2].json()["data"]["topUp"]["__typename"] == "TopUpSucceeded"
    magma = [s for s in spans if (s.attributes or {}).get("balance_gateway.account") == "magma"]
    assert [(s.attributes or {})["balance_gateway.attempt"] for s in magma] == [1, 2, 3]
    assert all((s.attributes or {})["balance_gateway.outcome"] == "http_5xx" for s in magma)
    assert "balance_gateway.retry_wait_seconds" not in (magma[0].attributes or {})
    assert all("balance_gateway.retry_wait_seconds" in (s.attributes or {}) for s in magma[1:])

    servers = [s for s in spans if s.kind is SpanKind.SERVER]
    documents = [str((s.attributes or {}).get("graphql.document")) for s in servers]
    assert 'amount: ""' in documents[2] and "topUp" in documents[2]
    text = attribute_text(spans)
    for literal in ("7777", "PAY-SECRET-REF", "trace-2", "2500", "trace-1", "PAY-1"):
        assert literal not in text
    assert servers[1].name.startswith("mutation")


async def asgi_instrumentation_span(status: int) -> ReadableSpan:
    """What OpenTelemetry's own ASGI instrumentation (stable HTTP conventions) records for
    the request `http_request` sends, around an app answering `status`."""
    import os

    os.environ["OTEL_SEMCONV_STABILITY_OPT_IN"] = "http"
    from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware

    async def answer(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    app = OpenTelemetryMiddleware(
        answer, tracer_provider=provider, exclude_spans=["receive", "send"]
    )
    await http_request(app, "/graphql")
    (span,) = exporter.get_finished_spans()
    return span


async def http_request(app: Any, path: str, **extra: Any) -> httpx.Response:
    transport = httpx.ASGITransport(app=app, client=("10.0.0.7", 40123))
    headers = {
        "authorization": f"Bearer {FULL_KEY}",
        "user-agent": "dashboard/2.1",
        **extra.pop("headers", {}),
    }
    async with httpx.AsyncClient(transport=transport, base_url="http://gw.example:8080") as http:
        return await http.post(path, json={"query": QUERY}, headers=headers, **extra)


async def test_the_server_span_has_the_http_attributes_opentelemetrys_asgi_instrumentation_writes(
    sim: Simulator, clock: FakeClock
) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    settings = dataclasses.replace(
        production(demo_settings()), tracing=TracingSettings(enabled=True)
    )
    app = create_app(
        settings,
        transport=httpx.ASGITransport(app=sim.app),
        clock=clock,
        sleep=no_sleep,
        tracer_provider=provider,
    )
    async with app.router.lifespan_context(app):
        await http_request(app, "/graphql")
        sim.state.set_faults("magma", status=503)
        clock.advance(3600)
        await http_request(app, "/graphql")
        stream = await http_request(app, "/graphql/stream", headers={"accept": "text/event-stream"})
    spans = exporter.get_finished_spans()
    servers = [s for s in spans if s.kind is SpanKind.SERVER]
    ours = dict(servers[0].attributes or {})
    theirs = dict((await asgi_instrumentation_span(200)).attributes or {})
    assert set(theirs) - set(ours) == {"url.query"} or set(theirs) - set(ours) == set()
    assert set(ours) - set(theirs) >= {"http.route"}
    for key in set(theirs) & set(ours):
        assert ours[key] == theirs[key], key
    assert "url.query" not in ours  # a GET's document would be there
    assert ours["http.route"] == "/graphql"
    # /graphql/stream has its server span too
    assert stream.status_code == 200
    assert [dict(s.attributes or {})["http.route"] for s in servers] == [
        "/graphql",
        "/graphql",
        "/graphql/stream",
    ]
    # a failed upstream attempt is an ERROR span, with what went wrong
    failed = [
        s
        for s in spans
        if s.kind is SpanKind.CLIENT
        and (s.attributes or {}).get("balance_gateway.account") == "magma"
    ][1:]
    assert failed and all(s.status.status_code is StatusCode.ERROR for s in failed)
    assert all((s.attributes or {})["error.type"] == "http_5xx" for s in failed)
    fine = [s for s in spans if s.kind is SpanKind.CLIENT and s not in failed]
    assert all(s.status.status_code is StatusCode.UNSET for s in fine)


async def test_a_server_error_is_an_error_span_as_the_instrumentation_makes_it() -> None:
    theirs = await asgi_instrumentation_span(503)
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing = OpenTelemetryTracing(provider)

    async def shed(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 503, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    await http_request(TracedRequests(shed, tracing), "/graphql")
    (ours,) = exporter.get_finished_spans()
    assert ours.status.status_code is theirs.status.status_code is StatusCode.ERROR
    assert (ours.attributes or {})["error.type"] == (theirs.attributes or {})["error.type"] == "503"
