"""Automatic persisted queries, as Apollo defines them (Apollo Client's `PersistedQueryLink`,
urql's and Relay's equivalents): a client sends only the SHA-256 of its document; a gateway
that does not know it answers `PERSISTED_QUERY_NOT_FOUND`, and the client sends the hash
with the document once, which registers it.

A document is registered only when its text hashes to the id it is sent with and it
parses and validates against the schema, at most `MAX_DOCUMENT_BYTES` long. With Redis it
is kept there for `TTL_SECONDS` (replicas share it; Redis' own memory policy bounds the
whole); with the in-memory cache, in a map of this process that keeps the
`MAX_LOCAL_DOCUMENTS` most recently used — never a store a client can grow without end.
Under `[trusted_documents] mode = "enforce"` nothing is registered: only the manifest runs
there (`documents.py`).
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict

import strawberry
from graphql import GraphQLError, parse, validate

from gateway._compat.strawberry import core_schema
from gateway.cache import keys
from gateway.cache.store import Store
from gateway.errors import ErrorCode
from gateway.server.refused import Refused

TTL_SECONDS = 86_400.0  # a registered document lives a day after it was last registered
MAX_DOCUMENT_BYTES = 32_768
MAX_LOCAL_DOCUMENTS = 1000
NOT_FOUND = Refused(400, "PersistedQueryNotFound", ErrorCode.PERSISTED_QUERY_NOT_FOUND)


def sha256_hex(document: str) -> str:
    return hashlib.sha256(document.encode()).hexdigest()


class PersistedQueries:
    def __init__(self, store: Store, schema: strawberry.Schema, max_tokens: int) -> None:
        self.store = store
        self.schema = schema
        self.max_tokens = max_tokens
        self.local: OrderedDict[str, str] | None = None if store.shared else OrderedDict()

    async def get(self, hex_id: str) -> str | None:
        if self.local is None:
            return await self.store.get(keys.persisted_query(hex_id))
        found = self.local.get(hex_id)
        if found is not None:
            self.local.move_to_end(hex_id)
        return found

    async def register(self, hex_id: str, document: str) -> None:
        """Keep `document` under its id, when it is that document and a valid one (an
        invalid one is answered with its errors as any document is, and kept nowhere)."""
        if sha256_hex(document) != hex_id:
            raise Refused(400, "provided sha does not match query")
        if len(document.encode()) > MAX_DOCUMENT_BYTES or not self.valid(document):
            return
        if self.local is None:
            await self.store.set(keys.persisted_query(hex_id), document, TTL_SECONDS)
            return
        self.local[hex_id] = document
        self.local.move_to_end(hex_id)
        while len(self.local) > MAX_LOCAL_DOCUMENTS:
            self.local.popitem(last=False)

    def valid(self, document: str) -> bool:
        try:
            parsed = parse(document, max_tokens=self.max_tokens)
        except GraphQLError:
            return False
        return not validate(core_schema(self.schema), parsed)
