"""httpx-aiohttp's error mapping (held to the version in pyproject.toml).

`AiohttpTransport` turns aiohttp's errors into httpx's, but not faithfully: a refused
connection and a reset after the request was written both come out as
`httpx.ConnectTimeout`. What happened is aiohttp's error, which it chains as the httpx
error's cause (`raise ... from exc`); `aiohttp_cause` reads it. Guarded by
`tests/compat/test_compat.py`, which makes a refused connection through the real transport.
"""

from __future__ import annotations

import httpx

__all__ = ["aiohttp_cause"]


def aiohttp_cause(exc: httpx.TransportError) -> BaseException | None:
    """The aiohttp (or asyncio) error behind an error of httpx-aiohttp's transport."""
    return exc.__cause__
