"""`[trusted_documents]`: the operations a frontend ships, and whether others may run.

The manifest is a JSON file — `{"<sha256 hex>": "<document>", …}` (keys may carry the
`sha256:` prefix), or Apollo's persisted-query manifest (`{"format":
"apollo-persisted-query-manifest", "operations": [{"id", "body"}, …]}`) — whose every id is
checked to be the SHA-256 of its document's exact UTF-8 text. `balance-gateway documents
manifest DIR` writes one from a folder of `.graphql` files.

Modes: `off` (document ids are refused; any document runs), `allow` (ids and arbitrary
documents both run), `enforce` (only manifest documents run; an arbitrary one is refused
before it is parsed). A client's own `trusted_documents` overrides the mode for it.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gateway.config.checker import Checker

MODES = ("off", "allow", "enforce")
DOCUMENT_ID = re.compile(r"^(?:sha256:)?([0-9a-f]{64})$")


@dataclass(frozen=True)
class TrustedDocumentsSettings:
    mode: str = "off"
    documents: Mapping[str, str] = field(default_factory=dict)  # sha256 hex → document


def digest(document: str) -> str:
    return hashlib.sha256(document.encode("utf-8")).hexdigest()


def manifest_entries(data: Any) -> list[tuple[str, Any]] | None:
    """(id, document) pairs of either manifest format, or None for neither."""
    if isinstance(data, dict) and data.get("format") == "apollo-persisted-query-manifest":
        operations = data.get("operations")
        if not isinstance(operations, list) or not all(isinstance(o, dict) for o in operations):
            return None
        return [(str(o.get("id")), o.get("body")) for o in operations]
    if isinstance(data, dict):
        return list(data.items())
    return None


def parse_documents(check: Checker, raw: Mapping[str, Any]) -> TrustedDocumentsSettings:
    where = "trusted_documents"
    check.unknown(raw, {"mode", "manifest"}, where)
    mode = check.choice(raw, "mode", where, MODES)
    if "manifest" not in raw:
        if mode != "off":
            check.add(
                f"{where}.manifest",
                f"mode {mode!r} needs a manifest",
                'manifest = "documents.json"',
            )
        return TrustedDocumentsSettings(mode=mode)
    path = check.path(check.string(raw, "manifest", where))
    try:
        entries = manifest_entries(json.loads(path.read_text(encoding="utf-8")))
    except OSError as exc:
        check.add(f"{where}.manifest", f"cannot read {path}: {exc.strerror}", "check the path")
        return TrustedDocumentsSettings(mode=mode)
    except ValueError:
        entries = None
    if entries is None:
        check.add(
            f"{where}.manifest",
            f"{path} is not a manifest",
            "write it with `balance-gateway documents manifest DIR`",
        )
        return TrustedDocumentsSettings(mode=mode)
    documents: dict[str, str] = {}
    for key, document in entries:
        found = DOCUMENT_ID.match(key)
        if not found or not isinstance(document, str) or found.group(1) != digest(document):
            check.add(
                f"{where}.manifest",
                f"entry {key[:80]!r} is not the SHA-256 of its document",
                "rebuild the manifest with `balance-gateway documents manifest DIR`",
            )
            continue
        documents[found.group(1)] = document
    return TrustedDocumentsSettings(mode=mode, documents=documents)
