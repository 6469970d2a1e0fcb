"""Request metrics, recorded when a `/graphql` or `/mcp` request ends
(`log_context.RequestContext` calls `observer`'s function with what the request did) — and,
apart, how each request to `/graphql/stream` ended (`gateway_event_streams_total`: a
stream's duration is its life, so it stays out of the request-duration histogram).

Labels stay bounded whatever clients send: the operation type is one of three (or
`unknown` when nothing parsed), an operation name only if `[metrics] operation_names`
lists it (`other` otherwise, `none` when the client named none), outcomes and refusal
reasons are the gateway's own words. On `/mcp` the name is `mcp:` and the tool's — a name
of the manifest, which only the MCP endpoint notes once it knows the tool — or `mcp:-`
for any other request there (the handshake, `tools/list`, a tool that does not exist, a
refusal at the gate): a `:` is in no GraphQL name, so neither meets a `/graphql` one.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any

from gateway.observability.log_context import RequestStats
from gateway.observability.metrics import Metrics

Observer = Callable[[Any, int, float, RequestStats], None]


STREAM_PATH = "/graphql/stream"
MCP_PATH = "/mcp"  # (`mcp.PATH`: that module loads the MCP SDK, which this one needs not)


def observer(
    metrics: Metrics, operation_names: Collection[str], path: str = "/graphql"
) -> Observer:
    listed = frozenset(operation_names)
    counted: dict[tuple[str, str, str, str], Any] = {}  # label values → their children
    timed: dict[tuple[str, str], Any] = {}  # (both bounded: the labels' values are)

    def observe(scope: Any, status: int, seconds: float, stats: RequestStats) -> None:
        if scope["path"] == STREAM_PATH:  # counted apart: a stream's duration is its life
            outcome = stats.outcome or ("ok" if status < 400 else "refused")
            metrics.event_streams.labels(stats.operation_type or "unknown", outcome).inc()
            return
        at = scope["path"]
        if at not in (path, MCP_PATH) or stats.outcome is None:  # GraphiQL's page has none
            return
        kind = stats.operation_type or "unknown"
        name = stats.operation_name
        if at == MCP_PATH:
            label = f"mcp:{name or '-'}"
        else:
            label = "none" if name is None else name if name in listed else "other"
        key = (kind, label, stats.outcome, stats.reason or "")
        if (count := counted.get(key)) is None:
            count = counted[key] = metrics.requests.labels(*key)
        count.inc()
        if (timing := timed.get(key[::2])) is None:
            timing = timed[key[::2]] = metrics.request_duration.labels(kind, stats.outcome)
        timing.observe(seconds)

    return observe
