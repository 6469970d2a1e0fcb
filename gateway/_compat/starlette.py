"""Starlette internals the endpoint touches.

`set_body()`: the endpoint reads a request's body itself (capped, timed) and hands it on
through Starlette's own cache of it, `Request._body`, so Strawberry's view reads the same
bytes without reading the stream again.
"""

from __future__ import annotations

from starlette.requests import Request


def set_body(request: Request, body: bytes) -> None:
    request._body = body
