"""What a GraphQL response is sent as, chosen by the request's `Accept` (GraphQL over HTTP).

`application/graphql-response+json` when the client accepts it: then a request that fails
before execution (a document that does not parse or validate, variables that do not coerce,
no operation to run) is answered 400 without a `data` entry. `application/json` otherwise —
no `Accept`, a wildcard, or asked for — with the legacy rule that every GraphQL response is
200. Nothing acceptable: 406. Among explicit types the higher q-value wins, and on a tie the
new type.
"""

from __future__ import annotations

GRAPHQL_RESPONSE = "application/graphql-response+json"
JSON = "application/json"
WILDCARDS = ("*/*", "application/*")


def negotiate(accept: str | None) -> str | None:
    """The media type to answer with, or None when the client accepts neither."""
    if accept is None or not accept.strip():
        return JSON
    best: tuple[float, int, str] | None = None
    for part in accept.split(","):
        media, *params = (p.strip() for p in part.split(";"))
        media = media.lower()
        quality = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if quality <= 0:
            continue
        if media == GRAPHQL_RESPONSE:
            candidate = (quality, 2, GRAPHQL_RESPONSE)
        elif media == JSON:
            candidate = (quality, 1, JSON)
        elif media in WILDCARDS:
            candidate = (quality, 0, JSON)  # a wildcard keeps the legacy type
        else:
            continue
        if best is None or candidate[:2] > best[:2]:
            best = candidate
    return best[2] if best else None
