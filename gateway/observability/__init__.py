"""What the gateway tells its operators: log lines and their format, the request context
every line carries (and the access line), Prometheus metrics, and traces. Every layer may
use it; it uses none of them."""

__all__ = [
    "fleet_exposition",
    "log_context",
    "log_format",
    "metrics",
    "request_trace",
    "tracing",
]
