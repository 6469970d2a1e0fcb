"""The ASGI edge: routes, admission, authentication, the GraphQL endpoint and the streams.
Its public surface, what the composition root imports:"""

__all__ = [
    "admission",
    "auth",
    "documents",
    "early_hits",
    "early_shed",
    "edge",
    "endpoint",
    "events",
    "exposition",
    "mcp",
    "memory_release",
    "metrics_listener",
    "pages",
    "persisted_queries",
    "rate_limit",
    "readiness",
    "request_metrics",
    "serving",
    "view",
    "workers",
]
