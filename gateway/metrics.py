"""Prometheus instruments, one registry per app (so several apps in one process, as in
tests, never collide). Labels are account ids and fixed outcome names — never anything
a caller typed."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


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
            "gateway_graphql_in_flight", "GraphQL requests being answered.", registry=r
        )
        self.admission_events = Counter(
            "gateway_admission_events",
            "GraphQL requests admitted at once, after queueing, or shed (rejected, timed_out).",
            ["outcome"],
            registry=r,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
