"""Starlette internals the endpoint touches.

`set_body()`: the endpoint reads a request's body itself (capped, timed) and hands it on
through Starlette's own cache of it, `Request._body`, so Strawberry's view reads the same
bytes without reading the stream again.

`set_query()`: a GET naming a trusted document by id is answered as if it had sent the
document: the query string is replaced in the ASGI scope, and Starlette's cached parse of
it, `Request._query_params`, is dropped so Strawberry's view reads the new one.
"""

from __future__ import annotations

from urllib.parse import urlencode

from starlette.requests import Request


def set_body(request: Request, body: bytes) -> None:
    request._body = body


def set_query(request: Request, params: dict[str, str]) -> None:
    request.scope["query_string"] = urlencode(params).encode("latin-1")
    if hasattr(request, "_query_params"):
        del request._query_params
