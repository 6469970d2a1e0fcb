"""Caching behind one store: balances read through it, whole answers kept in it, every key's
grammar in `keys.py`. Its public surface, what other layers import:"""

__all__ = [
    "codec",
    "keys",
    "read_through",
    "responses",
    "store",
]
