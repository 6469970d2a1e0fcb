"""Traces, when `[tracing] enabled = true` (and `pip install 'balance-gateway[otel]'`).

Off, nothing of OpenTelemetry is imported: `NO_TRACING` does nothing at all. On, each
GraphQL request is one SERVER span — named `{graphql.operation.type} {graphql.operation.name}`
(or the type alone) as the GraphQL semantic conventions ask, continuing the caller's W3C
`traceparent` — and every upstream attempt a CLIENT span beneath it (provider, account id,
HTTP status, attempt number, outcome, the retry wait before it), whose context is sent to
the provider as `traceparent`. Cache hits, stale answers and misses are attributes of the
server span. The GraphQL document is recorded only with `include_document`, and then with
every literal value replaced (strings by "", numbers by 0, lists by []), so
no amount, reference or phone number reaches a trace; no attribute ever holds a header, a
credential or an amount.

The server span carries HTTP's stable semantic-convention attributes as OpenTelemetry's
own ASGI instrumentation writes them (`http.request.method`, `url.scheme`, `url.path`,
`server.address`, `server.port`, `network.protocol.version`, `client.address`,
`client.port`, `user_agent.original`, `http.response.status_code`, `error.type` on a 5xx)
plus `http.route` — but never `url.query`, which over GET holds a document and its
variables. It covers `/graphql` and `/graphql/stream`. A span's status is ERROR when it
failed: a server answer of 500 or more, an upstream attempt that did not succeed.

The exporter is OTLP over HTTP, configured by the standard `OTEL_*` variables
(`OTEL_EXPORTER_OTLP_ENDPOINT`, `OTEL_SERVICE_NAME`, `OTEL_TRACES_SAMPLER`, …); tests
hand `create_app` a provider of their own.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from typing import Any, Protocol

from gateway import __version__
from gateway.observability import log_context
from gateway.observability.log_context import RequestStats

SCOPE = "balance-gateway"


class Span(Protocol):
    def set_attribute(self, key: str, value: Any) -> None: ...


class NullSpan:
    def set_attribute(self, key: str, value: Any) -> None:
        pass


NULL_SPAN = NullSpan()


class Tracing:
    """No tracing: every call is free and does nothing."""

    enabled = False

    @contextlib.contextmanager
    def request(self, scope: Mapping[str, Any]) -> Iterator[Span]:
        yield NULL_SPAN

    def finish_request(self, span: Span, status: int, stats: RequestStats) -> None:
        pass

    @contextlib.contextmanager
    def upstream(
        self,
        method: str,
        host: str,
        path: str,
        provider: str,
        account: str,
        attempt: int,
        retry_wait: float,
    ) -> Iterator[Span]:
        yield NULL_SPAN

    def upstream_failed(self, span: Span, outcome: str) -> None:
        pass

    def inject(self, headers: MutableMapping[str, str]) -> None:
        pass

    def close(self) -> None:
        pass


NO_TRACING = Tracing()


class OpenTelemetryTracing(Tracing):
    enabled = True

    def __init__(self, provider: Any = None, document: Callable[[Any], str] | None = None) -> None:
        """`document`: how a parsed document is shown (literals removed); None: never."""
        from opentelemetry import trace
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        self._owned = provider is None  # ours to flush and shut down at exit
        if provider is None:
            provider = otlp_provider()
        self._provider = provider
        self._trace = trace
        self._tracer = provider.get_tracer(SCOPE, __version__)
        self._propagator = TraceContextTextMapPropagator()
        self.document = document

    @contextlib.contextmanager
    def request(self, scope: Mapping[str, Any]) -> Iterator[Span]:
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        carrier = {k: v for k, v in headers.items() if k in ("traceparent", "tracestate")}
        parent = self._propagator.extract(carrier)
        method, path = scope["method"], scope["path"]
        with self._tracer.start_as_current_span(
            f"{method} {path}",
            context=parent,
            kind=self._trace.SpanKind.SERVER,
            attributes=server_attributes(scope, headers),
        ) as span:
            yield span

    def finish_request(self, span: Span, status: int, stats: RequestStats) -> None:
        if stats.operation_type is not None:
            name = stats.operation_type
            span.set_attribute("graphql.operation.type", stats.operation_type)
            if stats.operation_name:
                name = f"{name} {stats.operation_name}"
                span.set_attribute("graphql.operation.name", stats.operation_name)
            span.update_name(name)  # type: ignore[attr-defined]
        if self.document is not None and stats.document is not None:
            span.set_attribute("graphql.document", self.document(stats.document))
        span.set_attribute("http.response.status_code", status)
        if status >= 500:
            span.set_attribute("error.type", str(status))
        for key, value in (
            ("outcome", stats.outcome),
            ("refusal_reason", stats.reason),
            ("accounts", stats.accounts),
            ("upstream_calls", stats.upstream_calls),
            ("cache.hits", stats.cache_hits),
            ("cache.stale", stats.cache_stale),
            ("cache.misses", stats.cache_misses),
            ("response_cache", stats.response_cache),
            ("failures", stats.failures),
        ):
            if value is not None:
                span.set_attribute(f"balance_gateway.{key}", value)
        if stats.outcome == "internal" or status >= 500:
            span.set_status(self._trace.Status(self._trace.StatusCode.ERROR))  # type: ignore[attr-defined]

    @contextlib.contextmanager
    def upstream(
        self,
        method: str,
        host: str,
        path: str,
        provider: str,
        account: str,
        attempt: int,
        retry_wait: float,
    ) -> Iterator[Span]:
        attributes: dict[str, Any] = {
            "http.request.method": method,
            "server.address": host,
            "url.path": path,
            "balance_gateway.provider": provider,
            "balance_gateway.account": account,
            "balance_gateway.attempt": attempt,
        }
        if retry_wait:
            attributes["balance_gateway.retry_wait_seconds"] = round(retry_wait, 3)
        with self._tracer.start_as_current_span(
            method, kind=self._trace.SpanKind.CLIENT, attributes=attributes
        ) as span:
            yield span

    def upstream_failed(self, span: Span, outcome: str) -> None:
        span.set_attribute("error.type", outcome)
        span.set_status(self._trace.Status(self._trace.StatusCode.ERROR))  # type: ignore[attr-defined]

    def inject(self, headers: MutableMapping[str, str]) -> None:
        self._propagator.inject(headers)

    def close(self) -> None:
        if self._owned:
            self._provider.shutdown()  # flushes what the batch still holds


def server_attributes(scope: Mapping[str, Any], headers: Mapping[str, str]) -> dict[str, Any]:
    """HTTP's semantic-convention attributes of a request, as OpenTelemetry's ASGI
    instrumentation writes them (`url.query` left out: a GET's document is there)."""
    attributes: dict[str, Any] = {
        "http.request.method": scope["method"],
        "url.scheme": scope.get("scheme", "http"),
        "url.path": scope["path"],
        "http.route": scope["path"],
        "network.protocol.version": scope.get("http_version", "1.1"),
    }
    host = headers.get("host")
    server = scope.get("server")
    if host:
        attributes["server.address"] = host
        name, _, port = host.rpartition(":")
        if name and port.isdigit():
            attributes["server.port"] = int(port)
    elif server:
        attributes["server.address"], attributes["server.port"] = server[0], server[1]
    client = scope.get("client")
    if client:
        attributes["client.address"], attributes["client.port"] = client[0], client[1]
    if "user-agent" in headers:
        attributes["user_agent.original"] = headers["user-agent"]
    return attributes


class TracedRequests:
    """ASGI middleware: a SERVER span around each request to one of `paths` (inside the
    request context, so the span is finished with what the request did)."""

    def __init__(
        self, app: Any, tracing: Tracing, paths: tuple[str, ...] = ("/graphql", "/graphql/stream")
    ) -> None:
        self.app = app
        self.tracing = tracing
        self.paths = paths

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] not in self.paths or not self.tracing.enabled:
            await self.app(scope, receive, send)
            return
        status = 0

        async def send_status(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        with self.tracing.request(scope) as span:
            try:
                await self.app(scope, receive, send_status)
            finally:
                stats = log_context.stats()
                self.tracing.finish_request(span, status or log_context.unsent_status(stats), stats)


def otlp_provider() -> Any:
    """A provider exporting in batches over OTLP/HTTP, as the `OTEL_*` variables say."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    resource = Resource.create()  # OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES
    if str(resource.attributes.get("service.name", "")).startswith("unknown_service"):
        resource = resource.merge(Resource({"service.name": SCOPE}))
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    return provider
