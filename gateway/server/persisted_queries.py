"""Automatic persisted queries, as Apollo defines them (Apollo Client's `PersistedQueryLink`,
urql's and Relay's equivalents): a client sends only the SHA-256 of its document; a gateway
that does not know it answers `PERSISTED_QUERY_NOT_FOUND`, and the client sends the hash
with the document once, which registers it.

A document is registered only when its text hashes to the id it is sent with and it
parses and validates against the schema; it is kept in the configured cache (Redis shares
it across replicas) for `TTL_SECONDS`, at most `MAX_DOCUMENT_BYTES` long — so the store is
bounded by what the cache holds. Under `[trusted_documents] mode = "enforce"` nothing is
registered: only the manifest runs there (`documents.py`).
"""

from __future__ import annotations

import hashlib

import strawberry
from graphql import GraphQLError, parse, validate

from gateway._compat.strawberry import core_schema
from gateway.cache import keys
from gateway.cache.store import Store
from gateway.errors import ErrorCode
from gateway.server.refused import Refused

TTL_SECONDS = 86_400.0  # a registered document lives a day after it was last registered
MAX_DOCUMENT_BYTES = 32_768
NOT_FOUND = Refused(400, "PersistedQueryNotFound", ErrorCode.PERSISTED_QUERY_NOT_FOUND)


def sha256_hex(document: str) -> str:
    return hashlib.sha256(document.encode()).hexdigest()


class PersistedQueries:
    def __init__(self, store: Store, schema: strawberry.Schema, max_tokens: int) -> None:
        self.store = store
        self.schema = schema
        self.max_tokens = max_tokens

    async def get(self, hex_id: str) -> str | None:
        return await self.store.get(keys.persisted_query(hex_id))

    async def register(self, hex_id: str, document: str) -> None:
        """Keep `document` under its id, when it is that document and a valid one (an
        invalid one is answered with its errors as any document is, and kept nowhere)."""
        if sha256_hex(document) != hex_id:
            raise Refused(400, "provided sha does not match query")
        if len(document.encode()) > MAX_DOCUMENT_BYTES or not self.valid(document):
            return
        await self.store.set(keys.persisted_query(hex_id), document, TTL_SECONDS)

    def valid(self, document: str) -> bool:
        try:
            parsed = parse(document, max_tokens=self.max_tokens)
        except GraphQLError:
            return False
        return not validate(core_schema(self.schema), parsed)
