"""Which document a request runs: its own, or a trusted one named by id.

A request names a manifest document by `documentId` (`sha256:<hex>`, as the
GraphQL-over-HTTP persisted-documents draft names it) or by Apollo's
`extensions.persistedQuery.sha256Hash`. Under `enforce` (the configured mode, or the
client's own) a request that sends a document instead is refused before anything parses
it. Elsewhere (`off`, `allow`) Apollo's hash that names no manifest document is an
automatic persisted query (`persisted_queries.py`): run if registered, registered when
sent with its document, else `PERSISTED_QUERY_NOT_FOUND` — the answer Apollo Client's
`PersistedQueryLink` falls back on. The manifest's documents are the same text every
time, so the parse and validation caches (keyed by the text) hold each one once.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from gateway.access import Principal
from gateway.config.documents import TrustedDocumentsSettings
from gateway.errors import ErrorCode
from gateway.server.persisted_queries import NOT_FOUND, PersistedQueries
from gateway.server.refused import Refused

HEX = re.compile(r"^[0-9a-f]{64}$")


def requested_id(payload: Mapping[str, Any]) -> str | None:
    """The document id a request names (sha256 hex), if any."""
    document_id = payload.get("documentId")
    if document_id is not None:
        if not isinstance(document_id, str) or not document_id.startswith("sha256:"):
            raise Refused(400, "`documentId` must be `sha256:` and 64 hex digits.")
        hex_id = document_id[len("sha256:") :]
    else:
        extensions = payload.get("extensions") or {}
        persisted = extensions.get("persistedQuery") if isinstance(extensions, dict) else None
        if persisted is None:
            return None
        named = persisted.get("sha256Hash") if isinstance(persisted, dict) else None
        if not isinstance(named, str):
            raise Refused(400, "`persistedQuery.sha256Hash` must be a string.")
        hex_id = named
    if not HEX.match(hex_id):
        raise Refused(400, "A document id is 64 lowercase hex digits (SHA-256).")
    return hex_id


class TrustedDocuments:
    def __init__(
        self, settings: TrustedDocumentsSettings, persisted: PersistedQueries | None = None
    ) -> None:
        self.mode = settings.mode
        self.documents = settings.documents
        self.persisted = persisted

    def mode_for(self, principal: Principal) -> str:
        return principal.trusted_documents or self.mode

    async def resolve(self, payload: Mapping[str, Any], principal: Principal) -> tuple[str, bool]:
        """(the document to run, whether it is a trusted one), or a refusal."""
        mode = self.mode_for(principal)
        hex_id = requested_id(payload)
        query = payload.get("query")
        if hex_id is not None:
            document = self.documents.get(hex_id) if mode != "off" else None
            if document is not None:
                if query is not None and query != document:
                    raise Refused(400, "`query` is not the document its id names.")
                return document, True
            if mode == "enforce" or payload.get("documentId") is not None:
                raise Refused(
                    400,
                    f"No trusted document sha256:{hex_id}."
                    if mode != "off"
                    else "Trusted documents are off here: send the document as `query`.",
                    ErrorCode.DOCUMENT_NOT_FOUND,
                )
            return await self._persisted(hex_id, query), False
        if mode == "enforce":
            raise Refused(
                403,
                "Only trusted documents run here: send the `documentId` of a manifest document.",
                ErrorCode.DOCUMENT_NOT_TRUSTED,
            )
        if not isinstance(query, str):
            raise Refused(400, "`query` must be a string.")
        return query, False

    async def _persisted(self, hex_id: str, query: Any) -> str:
        """An automatic persisted query: the registered document, or this one registered."""
        if self.persisted is None:
            raise NOT_FOUND
        if query is None:
            found = await self.persisted.get(hex_id)
            if found is None:
                raise NOT_FOUND
            return found
        if not isinstance(query, str):
            raise Refused(400, "`query` must be a string.")
        await self.persisted.register(hex_id, query)
        return query
