"""Use cases, no HTTP and no GraphQL. Its public surface, what other layers import:"""

__all__ = [
    "balances",
    "close_watch",
    "cursor",
    "daily_close",
    "gauges",
    "history",
    "journal",
    "live",
    "notifications",
    "rates",
    "reporting",
    "topups",
    "transactions",
]
