"""Provider adapters: one module per provider, listed in `registry.py`."""
