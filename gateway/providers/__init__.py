"""Provider adapters: one module per provider, listed in `gateway/registry.py`; `loading.py`
loads each one's SPEC by name."""

__all__ = [
    "base",
    "loading",
    "protocols",
]
