"""A client's open event-stream connections, held to `[live] max_streams_per_client`.

The live-stream limit counts subscriptions; a connection can outlive its subscription (one
dropped for falling behind, whose last events still wait in its buffers). So every
subscription's own connection, and every single-connection-mode stream, holds one of its
client's places from the moment it is answered until the connection ends, and a client
with every place taken is refused (429) before anything runs. (A query's stream is short
and passes admission instead.)
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterable, Mapping

from starlette.responses import StreamingResponse

from gateway.server.held_slot import HeldUntilSent, Once
from gateway.server.media import EVENT_STREAM
from gateway.services.live import TooManyStreams

STREAM_HEADERS = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}


class OpenStreams:
    def __init__(self, max_per_client: int) -> None:
        self.max_per_client = max_per_client
        self._open: Counter[str] = Counter()

    def check(self, client: str) -> None:
        """Refuses (`TooManyStreams`) a client whose places are all taken."""
        if self._open[client] >= self.max_per_client:
            raise TooManyStreams(
                f"At most {self.max_per_client} open event streams per client.",
                retry_after_seconds=30,
            )

    def stream(self, client: str, body: AsyncIterable[bytes]) -> HeldUntilSent:
        """`body` as an event stream holding one of `client`'s places (refused past them)
        until its connection ends, however (`held_slot.py`)."""
        self.check(client)
        self._open[client] += 1

        def release() -> None:
            self._open[client] -= 1
            if not self._open[client]:
                del self._open[client]

        return HeldUntilSent(event_stream(body), Once(release))

    def counts(self) -> Mapping[str, int]:
        return dict(self._open)


def event_stream(body: AsyncIterable[bytes]) -> StreamingResponse:
    """`body` sent as `text/event-stream`, never cached or buffered on the way."""
    return StreamingResponse(body, media_type=EVENT_STREAM, headers=STREAM_HEADERS)
