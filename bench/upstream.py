"""A fake upstream that is never the bottleneck: a minimal asyncio HTTP/1.1 server that
answers every call after a fixed latency with the simulator's own answer to that call.

The first call for each (method, path, caller) is forwarded to the provider
simulator (`--simulator`) and its answer kept; every later one is answered from memory,
so the simulator's Starlette/JSON work (≈ 0.6 ms of CPU a call) is not paid per call.
Answers are the simulator's bytes, so the gateway parses real provider wire formats.
Keep-alive, Content-Length bodies, no pipelining (neither the gateway nor wrk pipelines).
`GET /_upstream/cpu` answers this process's CPU seconds so far, `GET /_upstream/calls` the
number of calls it has answered (the gateway's single flight shares one call among
concurrent requests for the same account: CPU per call is divided by calls made).

    python bench/upstream.py --port 9000 --simulator http://127.0.0.1:8001 --latency 0.05
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from typing import ClassVar

import httpx

Key = tuple[str, str, str]
Answer = tuple[int, bytes, bytes]  # status, content type, body
REASONS = {200: b"OK", 201: b"Created", 400: b"Bad Request", 401: b"Unauthorized"}


class Replay(asyncio.Protocol):
    answers: ClassVar[dict[Key, Answer]] = {}
    recording: ClassVar[dict[Key, asyncio.Future[Answer]]] = {}
    simulator: httpx.AsyncClient
    latency = 0.05
    calls = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.Transport = transport  # type: ignore[assignment]
        self.buffer = b""
        self.busy = False

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        self._next()

    def _next(self) -> None:
        if self.busy:
            return
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        head = self.buffer[:end].decode("latin-1").split("\r\n")
        headers = {}
        for line in head[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        if len(self.buffer) < end + 4 + length:
            return
        body = self.buffer[end + 4 : end + 4 + length]
        self.buffer = self.buffer[end + 4 + length :]
        method, target, _ = head[0].split(" ", 2)
        self.busy = True
        self.answering = asyncio.ensure_future(self._answer(method, target, headers, body))

    async def _answer(self, method: str, target: str, headers: dict[str, str], body: bytes) -> None:
        started = time.monotonic()
        if target == "/_upstream/cpu":
            times = os.times()
            answer: Answer = (200, b"text/plain", str(times.user + times.system).encode())
        elif target == "/_upstream/calls":
            answer = (200, b"text/plain", str(Replay.calls).encode())
        else:
            Replay.calls += 1
            answer = await self._recorded(method, target, headers, body)
            await asyncio.sleep(max(0.0, self.latency - (time.monotonic() - started)))
        status, content_type, payload = answer
        self.transport.write(
            b"HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n"
            % (status, REASONS.get(status, b"X"), content_type, len(payload))
            + payload
        )
        self.busy = False
        self._next()

    async def _recorded(
        self, method: str, target: str, headers: dict[str, str], body: bytes
    ) -> Answer:
        path = target.split("?", 1)[0]
        # Whose call it is: a bearer key, or the start of Paymob's per-call signature
        # header (base64 of "<public key>.<timestamp>…": its first 24 characters are the key's).
        credential = (headers.get("authorization") or "")[:24]
        key = (method, path, credential)
        known = self.answers.get(key)
        if known is not None:
            return known
        pending = self.recording.get(key)
        if pending is None:
            pending = self.recording[key] = asyncio.ensure_future(
                self._forward(method, target, headers, body)
            )
        answer = await pending
        if answer[0] < 400:  # a refusal (a replayed signature, say) is not kept
            self.answers[key] = answer
        self.recording.pop(key, None)
        return answer

    async def _forward(
        self, method: str, target: str, headers: dict[str, str], body: bytes
    ) -> Answer:
        keep = {k: v for k, v in headers.items() if k not in ("host", "content-length")}
        response = await self.simulator.request(method, target, headers=keep, content=body)
        content_type = response.headers.get("content-type", "application/json").encode()
        return response.status_code, content_type, response.content


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--simulator", required=True)
    parser.add_argument("--latency", type=float, default=0.05)
    args = parser.parse_args()
    Replay.simulator = httpx.AsyncClient(base_url=args.simulator, timeout=30)
    Replay.latency = args.latency
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Replay, "127.0.0.1", args.port, backlog=4096)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    import uvloop

    uvloop.run(main())
