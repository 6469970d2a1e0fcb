"""What a GraphQL response is sent as, chosen by the request's `Accept` (GraphQL over HTTP).

A single result: `application/graphql-response+json` when the client accepts it — then a
request that fails before execution (a document that does not parse or validate, variables
that do not coerce, no operation to run) is answered 400 without a `data` entry —
`application/json` otherwise (no `Accept`, a wildcard, or asked for), with the legacy rule
that every GraphQL response is 200. Among explicit types the higher q-value wins, and on a
tie the new type.

Results in parts (`@defer`/`@stream`, `incremental.py`): `multipart/mixed` or
`text/event-stream`, whichever has the higher q-value (on a tie, the one listed first). A
wildcard does not ask for parts: a client must name the stream it can read.
"""

from __future__ import annotations

from collections.abc import Iterator

GRAPHQL_RESPONSE = "application/graphql-response+json"
JSON = "application/json"
MULTIPART = "multipart/mixed"
EVENT_STREAM = "text/event-stream"
WILDCARDS = ("*/*", "application/*")


def _ranges(accept: str) -> Iterator[tuple[str, float]]:
    """(media type, q-value) of each range the client accepts at all (q > 0)."""
    for part in accept.split(","):
        media, *params = (p.strip() for p in part.split(";"))
        quality = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if quality > 0:
            yield media.lower(), quality


def negotiate(accept: str | None) -> str | None:
    """The media type of a single result, or None when the client accepts neither."""
    if accept is None or not accept.strip():
        return JSON
    best: tuple[float, int, str] | None = None
    for media, quality in _ranges(accept):
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


def streaming(accept: str | None) -> str | None:
    """The media type of results in parts, or None when the client names neither."""
    best: tuple[float, str] | None = None
    for media, quality in _ranges(accept or ""):
        if media in (MULTIPART, EVENT_STREAM) and (best is None or quality > best[0]):
            best = (quality, media)
    return best[1] if best else None
