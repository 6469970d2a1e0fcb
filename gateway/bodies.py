"""Reading an HTTP body with a size cap — the one reader the gateway's edge (requests) and
its upstream client (provider answers) share."""

from __future__ import annotations

from collections.abc import AsyncIterable


class TooLarge(Exception):
    """The body exceeds the cap: known from its declared length, or found while reading."""


async def read_capped(chunks: AsyncIterable[bytes], cap: int, declared: str | None = None) -> bytes:
    """The whole body, or `TooLarge` as soon as it is known to exceed `cap` bytes: from a
    declared `Content-Length` before reading anything, else while reading — never reading
    past it, never holding more than `cap` bytes."""
    if declared is not None and declared.isdigit() and int(declared) > cap:
        raise TooLarge
    parts: list[bytes] = []
    size = 0
    async for chunk in chunks:
        size += len(chunk)
        if size > cap:
            raise TooLarge
        parts.append(chunk)
    return b"".join(parts)
