"""Provider adapters: one module per provider, listed in `registry.py`."""

__all__ = [
    "base",
    "protocols",
    "registry",
]
