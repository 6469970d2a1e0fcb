"""Caching behind one store: balances read through it, whole answers kept in it, every key's
grammar in `keys.py`, a changed balance told to every replica (`changes.py`), a read's
result handed to the requests waiting for it a few per turn (`handout.py`). Its public
surface, what other layers import:"""

__all__ = [
    "changes",
    "codec",
    "handout",
    "keys",
    "read_through",
    "responses",
    "store",
]
