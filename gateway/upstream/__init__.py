"""The only code that talks HTTP to providers. Its public surface, what other layers import:"""

__all__ = [
    "breaker",
    "channel",
    "client",
    "quota",
    "webhooks",
]
