"""Whole-response cache, checked before GraphQL execution.

A dashboard polling the same document gets the stored bytes back without parsing,
validating or resolving anything. The key is a hash of: the caller (its scopes and the
accounts it may see), the generation of each of those accounts (`invalidate` bumps one,
so every response that could include it stops matching), and the request's body as sent
(its document, variables and operation name). Beside the bytes, an entry keeps what the
request was — its operation's name and how many accounts it asked — so a hit is logged
and counted as the miss was.
Only complete, error-free answers of query documents are stored, and only
until the earliest moment one of their balances stops being fresh; mutations, errors,
provider failures and stale answers never are.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

from gateway.cache import keys
from gateway.cache.read_through import Entry, Generations
from gateway.cache.store import Store
from gateway.clock import Clock

NOT_A_QUERY = re.compile(r"\b(mutation|subscription)\b")
# The same words in a raw body: a quick no (an escaped spelling is merely looked up, and missed)
NAMES_NOT_A_QUERY = re.compile(rb"\b(mutation|subscription)\b")


@dataclass(frozen=True)
class CachedRequest:
    """A POSTed GraphQL request that may be answered from the cache, keyed by its body's
    bytes as sent: a dashboard repeats its request byte for byte, so a hit is found
    (`server/cached_answers.py`) without parsing the body at all. The same request with
    its keys in another order is another entry."""

    key_material: bytes

    @classmethod
    def of(cls, body: bytes) -> CachedRequest | None:
        try:
            data = json.loads(body)
        except ValueError:
            return None
        return cls.from_payload(data, body) if isinstance(data, dict) else None

    @classmethod
    def from_payload(cls, data: dict[str, Any], body: bytes) -> CachedRequest | None:
        """From the request's body and its payload, already parsed (the endpoint has
        parsed it once): None unless it is a plain query document."""
        query, variables = data.get("query"), data.get("variables")
        operation = data.get("operationName")
        if not isinstance(query, str) or NOT_A_QUERY.search(query):
            return None
        if variables is not None and not isinstance(variables, dict):
            return None
        if operation is not None and not isinstance(operation, str):
            return None
        return cls(body)


@dataclass(frozen=True)
class StoredResponse:
    body: bytes
    operation_name: str | None  # as the document named it (a GraphQL Name: no newline)
    accounts: int

    def dump(self) -> str:
        return f"{self.operation_name or ''}\n{self.accounts}\n{self.body.decode()}"

    @classmethod
    def parse(cls, payload: str) -> StoredResponse | None:
        name, _, rest = payload.partition("\n")
        accounts, sep, body = rest.partition("\n")
        if not sep or not accounts.isdigit():
            return None  # not an entry of this shape: a miss
        return cls(body.encode(), name or None, int(accounts))


class ResponseCache:
    def __init__(self, store: Store, generations: Generations, clock: Clock) -> None:
        self.store = store
        self.generations = generations
        self._clock = clock

    async def key(self, request: CachedRequest, caller: str, accounts: list[str]) -> str:
        return _key(request, caller, accounts, await self.generations.of(accounts))

    def key_now(self, request: CachedRequest, caller: str, accounts: list[str]) -> str:
        """`key` on an in-process store, without awaiting (`Store.in_process` only), its
        store look not counted (`counted_hit`)."""
        generations = self.generations.of_now(accounts, counted=False)
        return _key(request, caller, accounts, generations)

    async def get(self, key: str) -> StoredResponse | None:
        return self._fresh(await self.store.get(key))

    def get_now(self, key: str) -> StoredResponse | None:
        """`get` on an in-process store, without awaiting (`Store.in_process` only), its
        store look not counted (`counted_hit`)."""
        return self._fresh(self.store.get_now(key, counted=False))

    def counted_hit(self, accounts: list[str]) -> None:
        """The store operations of `key_now` and `get_now`, counted once the hit they
        found is answered — as `key` and `get` count theirs (a look that finds nothing to
        answer leaves the counts to the way that answers it)."""
        if accounts:
            self.store.count("multi_get")
        self.store.count("get")

    def _fresh(self, stored: str | None) -> StoredResponse | None:
        entry = Entry.parse(stored)  # here the stamp is "valid until"
        if entry is not None and self._clock() < entry.stamp:
            return StoredResponse.parse(entry.payload)
        return None

    async def put(self, key: str, response: StoredResponse, until: float) -> None:
        ttl = until - self._clock()
        if ttl > 0:
            await self.store.set(key, Entry(until, response.dump()).dump(), ttl + 1)


def _key(request: CachedRequest, caller: str, accounts: list[str], generations: list[str]) -> str:
    digest = hashlib.sha256(caller.encode())
    for account, generation in zip(accounts, generations, strict=True):
        digest.update(f"\n{account}={generation}".encode())
    digest.update(b"\n")
    digest.update(request.key_material)
    return keys.response(digest.hexdigest())
