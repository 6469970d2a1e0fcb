"""A hostile upstream on a real socket: it reads each HTTP request whole, then writes the
exact bytes a test scripts — broken framing included — and closes the connection.

No HTTP library on this side, so nothing repairs what the test wants the gateway to see.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field


@dataclass
class RawUpstream:
    answer: bytes  # to every request but those to the paths in `by_path`
    by_path: Mapping[str, bytes]
    requests: list[bytes] = field(default_factory=list)
    url: str = ""

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            body = await reader.readexactly(length) if length else b""
            self.requests.append(head + body)
            path = head.split(b" ", 2)[1].decode()
            writer.write(self.by_path.get(path, self.answer))
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@asynccontextmanager
async def raw_upstream(answer: bytes, **by_path: bytes) -> AsyncIterator[RawUpstream]:
    """`by_path` keys are paths with `/` written as `_`: `ok=…` answers `/ok`."""
    upstream = RawUpstream(answer, {"/" + k.replace("_", "/"): v for k, v in by_path.items()})
    server = await asyncio.start_server(upstream._serve, "127.0.0.1", 0)
    upstream.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    try:
        yield upstream
    finally:
        server.close()
        await server.wait_closed()


def response(body: bytes, *headers: bytes, status: bytes = b"200 OK") -> bytes:
    """A well-formed answer, unless `headers` say otherwise."""
    head = [b"HTTP/1.1 " + status, b"Content-Type: application/json", *headers]
    if not any(h.lower().startswith((b"content-length", b"transfer-encoding")) for h in headers):
        head.append(b"Content-Length: %d" % len(body))
    return b"\r\n".join(head) + b"\r\n\r\n" + body
