"""`Secret`: a configured secret (a credential, a signing key, a password) in a wrapper.

Secrets print as `Secret('**********')`, so a stray log line or repr cannot leak them;
`digest` gives a stable, non-reversible name for cache keys.
"""

from __future__ import annotations

import hashlib


class Secret:
    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def digest(self) -> str:
        return hashlib.sha256(b"balance-gateway:" + self._value.encode()).hexdigest()[:16]

    def __repr__(self) -> str:
        return "Secret('**********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)
