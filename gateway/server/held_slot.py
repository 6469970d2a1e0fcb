"""An answer sent over time that holds its request's admission slot (`admission.py`)
until its last byte is sent or its client has gone: a query answered in parts, or one
query's events on `/graphql/stream`. Released however the sending ends — even when the
client left before the body began, when a body generator never started and so never
runs its own `finally`."""

from __future__ import annotations

from collections.abc import Callable

from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send


class HeldUntilSent(StreamingResponse):
    """`response` as it would be sent, then `release()` (which must be idempotent)."""

    def __init__(self, response: StreamingResponse, release: Callable[[], None]) -> None:
        self.__dict__.update(response.__dict__)  # its body, status and headers, as built
        self.release = release

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.release()


class Once:
    """`release`, callable any number of times, calling it the first time only."""

    def __init__(self, release: Callable[[], None]) -> None:
        self._release: Callable[[], None] | None = release

    def __call__(self) -> None:
        release, self._release = self._release, None
        if release is not None:
            release()
