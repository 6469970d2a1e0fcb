"""Prometheus instruments, one registry per app (so several apps in one process, as in
tests, never collide). Labels are account ids and fixed outcome names — never anything
a caller typed."""

from __future__ import annotations

from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# Fine where a gateway's answers are (a cached answer in ms, a fan-out in tens of ms).
REQUEST_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.0075,
    0.01,
    0.015,
    0.02,
    0.03,
    0.04,
    0.05,
    0.075,
    0.1,
    0.15,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.upstream_requests = Counter(
            "gateway_upstream_requests",
            "Upstream HTTP attempts by account and outcome.",
            ["account", "outcome"],
            registry=r,
        )
        self.upstream_latency = Histogram(
            "gateway_upstream_latency_seconds",
            "Upstream attempt latency by account and outcome.",
            ["account", "outcome"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.upstream_in_flight = Gauge(
            "gateway_upstream_in_flight", "Upstream requests in flight.", ["account"], registry=r
        )
        self.cache_events = Counter(
            "gateway_cache_events",
            "Balance cache hits, misses and stale answers served.",
            ["account", "event"],
            registry=r,
        )
        self.response_cache_events = Counter(
            "gateway_response_cache_events",
            "Whole-response cache hits and misses.",
            ["event"],
            registry=r,
        )
        self.budget_calls = Counter(
            "gateway_budget_calls",
            "Upstream calls taken from, or refused by, the account's call quota.",
            ["account", "result"],
            registry=r,
        )
        self.breaker_state = Gauge(
            "gateway_breaker_state",
            "Circuit breaker: 0 closed, 1 open, 2 half-open.",
            ["account"],
            registry=r,
        )
        self.graphql_in_flight = Gauge(
            "gateway_graphql_in_flight",
            "GraphQL requests being answered (MCP tool calls included).",
            registry=r,
        )
        self.admission_events = Counter(
            "gateway_admission_events",
            "GraphQL requests by kind (query, mutation) admitted at once, admitted after "
            "queueing (queued), or shed: rejected (no room, no place to wait), timed_out "
            "(waited its longest).",
            ["operation_type", "outcome"],
            registry=r,
        )
        self.admission_limit = Gauge(
            "gateway_admission_limit",
            "GraphQL requests this worker lets run at once now (adaptive admission moves it).",
            registry=r,
        )
        self.admission_queue_seconds = Histogram(
            "gateway_admission_queue_seconds",
            "How long admitted GraphQL requests waited for a slot.",
            buckets=(0.0, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
            registry=r,
        )
        self.loop_delay = Gauge(
            "gateway_event_loop_delay_seconds",
            (
                "How long ready work waits for the CPU: how late the event loop last ran a "
                "timer, or how long a read's result waited to be handed to its request."
            ),
            registry=r,
        )

        self.requests = Counter(
            "gateway_requests",
            "GraphQL requests (and MCP ones, their name mcp:<tool> or mcp:-) by operation "
            "type, listed operation name, outcome (ok, partial, client_error, refused, "
            "internal, cancelled) and refusal reason.",
            ["operation_type", "operation_name", "outcome", "reason"],
            registry=r,
        )
        self.event_streams = Counter(
            "gateway_event_streams",
            "Requests to /graphql/stream by operation type and how they ended (ok, "
            "cancelled: the client left first, refused, client_error, internal).",
            ["operation_type", "outcome"],
            registry=r,
        )
        self.request_duration = Histogram(
            "gateway_request_duration_seconds",
            "GraphQL (and MCP) request duration, from the first byte read to the last byte sent.",
            ["operation_type", "outcome"],
            buckets=REQUEST_BUCKETS,
            registry=r,
        )
        self.memory_releases = Counter(
            "gateway_memory_releases",
            "Times the C allocator's free memory was given back to the system after a wave "
            "of connections ended.",
            registry=r,
        )
        self.rate_limit_refusals = Counter(
            "gateway_rate_limit_refusals",
            "Requests refused by a client's own rate limit (HTTP 429).",
            registry=r,
        )
        self.topups = Counter(
            "gateway_topups",
            "Top-up answers by outcome (succeeded, pending, rejected) and whether replayed.",
            ["outcome", "replayed"],
            registry=r,
        )
        self.journal_pending = Gauge(
            "gateway_journal_pending",
            "Top-ups whose outcome is unknown (pending, or in flight past their lease), as "
            "read from the journal at scrape time.",
            registry=r,
        )
        self.store_operations = Counter(
            "gateway_store_operations",
            "Operations sent to the cache backend (each a round trip on Redis), by kind.",
            ["operation"],
            registry=r,
        )
        self.live_streams = Gauge(
            "gateway_live_streams", "Live balance streams open (Server-Sent Events).", registry=r
        )
        self.webhook_deliveries = Counter(
            "gateway_webhook_deliveries",
            "Webhook delivery attempts by endpoint ([webhooks.NAME]) and outcome: delivered, "
            "retried (will be tried again), failed (given up).",
            ["endpoint", "outcome"],
            registry=r,
        )
        self.live_watchers = Gauge(
            "gateway_live_watchers", "Accounts being watched for live streams.", registry=r
        )
        for collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
            r.register(collector)  # CPU, RSS, open FDs, GC: the client's own

    def render(self) -> bytes:
        return generate_latest(self.registry)
