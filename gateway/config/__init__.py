"""Typed settings from TOML and the environment, every problem reported at once. Its public
surface, what other layers import:"""

__all__ = [
    "accounts",
    "call_budgets",
    "documents",
    "reporting",
    "security",
    "settings",
    "webhook_secret",
]
