"""Values made once from an object still in use: requests that waited on one upstream read
share its objects (`services/balances.py`), and what is made from them — the schema's view
of a result, a plan's rendering of an object — is made once for all of them.

An entry lasts as long as its object (a weak reference: nothing is kept alive for it, and
its id is not reused while it is remembered); an object that cannot be weakly referenced
is not remembered. What is made must depend on the object and the tag alone, and never be
changed once made.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class PerObject(Generic[T]):
    def __init__(self) -> None:
        self._made: dict[tuple[int, int], tuple[weakref.ref[Any], object, T]] = {}

    def get(self, source: object, tag: object, make: Callable[[], T]) -> T:
        """What `make` made for `source` and `tag` (the tag is kept alive with the entry)."""
        key = (id(source), id(tag))
        known = self._made.get(key)
        if known is not None and known[0]() is source and known[1] is tag:
            return known[2]
        made = make()
        try:
            alive = weakref.ref(source, lambda _: self._made.pop(key, None))
        except TypeError:  # not weakly referenceable: made each time
            return made
        self._made[key] = (alive, tag, made)
        return made
