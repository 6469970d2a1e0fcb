"""What a GraphQL response is sent as, chosen by the request's `Accept` (GraphQL over HTTP).

A single result: `application/graphql-response+json` when the client accepts it — then a
request that fails before execution (a document that does not parse or validate, variables
that do not coerce, no operation to run) is answered 400 without a `data` entry —
`application/json` otherwise (no `Accept`, a wildcard, or asked for), with the legacy rule
that every GraphQL response is 200. Among explicit types the higher q-value wins, and on a
tie the new type.

Results in parts (`@defer`/`@stream`, `incremental.py`): `multipart/mixed` or
`text/event-stream`, whichever has the higher q-value (on a tie, the one listed first). A
wildcard does not ask for parts: a client must name the stream it can read. The parts are
graphql-js 17's format (`incrementalSpec=v0.2`, or no spec named) — or, for a client that
asks with `multipart/mixed;deferSpec=20220824`, the format of that date that Apollo
Client's `Defer20220824Handler`, Apollo Router and Relay read. Any other spec is 406,
naming the ones served.
"""

from __future__ import annotations

from collections.abc import Iterator

from gateway.server.refused import Refused

GRAPHQL_RESPONSE = "application/graphql-response+json"
JSON = "application/json"


def content_type(media: str) -> str:
    """The Content-Type a whole answer in `media` is sent with (a stored or shared one
    too): `application/graphql-response+json` names its charset, as Strawberry's JSON
    does not."""
    return f"{GRAPHQL_RESPONSE}; charset=utf-8" if media == GRAPHQL_RESPONSE else media


MULTIPART = "multipart/mixed"
EVENT_STREAM = "text/event-stream"
LEGACY_MULTIPART = "multipart/mixed;deferSpec=20220824"  # the parts in 2022's format
WILDCARDS = ("*/*", "application/*")
SPECS = {("deferspec", "20220824"): LEGACY_MULTIPART, ("incrementalspec", "v0.2"): MULTIPART}
UNKNOWN_SPEC = Refused(
    406,
    "Results in parts are served as multipart/mixed;incrementalSpec=v0.2 (graphql-js 17, "
    "also without a spec), multipart/mixed;deferSpec=20220824 and text/event-stream.",
)


def _ranges(accept: str, with_spec: bool = False) -> Iterator[tuple[str, float]]:
    """(media type, q-value) of each range the client accepts at all (q > 0); with
    `with_spec`, a multipart range names the parts' format it asks for (`SPECS`)."""
    for part in accept.split(","):
        media, *params = (p.strip() for p in part.split(";"))
        media, quality = media.lower(), 1.0
        for param in params:
            name, _, value = (x.strip() for x in param.partition("="))
            if name.lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
            elif (
                with_spec
                and media == MULTIPART
                and name.lower() in ("deferspec", "incrementalspec")
            ):
                spec = SPECS.get((name.lower(), value.strip('"')))
                if spec is None:
                    raise UNKNOWN_SPEC
                media = spec
        if quality > 0:
            yield media, quality


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
    for media, quality in _ranges(accept or "", with_spec=True):
        parts = media in (MULTIPART, LEGACY_MULTIPART, EVENT_STREAM)
        if parts and (best is None or quality > best[0]):
            best = (quality, media)
    return best[1] if best else None
