"""uvicorn internals: limits on a request's head (a subclass of its httptools protocol).

uvicorn's httptools protocol holds whatever headers a client sends (megabytes of them), and
waits forever for a head that never completes: a client trickling a header byte every few
seconds, or sending nothing at all, keeps its socket. `guarded_protocol()` returns that
protocol with three limits added, each answered the way HTTP says:

- a request head (request line + headers) over `max_header_bytes` → 431, connection closed;
- a head not complete `header_timeout` seconds after the connection opened or the previous
  answer was sent → 408 if some of it arrived, else the idle connection is just closed
  (uvicorn's own keep-alive timeout still closes idle connections sooner);
- the body's own pace is the endpoint's business (`[server] body_timeout_seconds`).

It also hands each request's scope its connection's transport (`transport_of(scope)`), so
a response whose reader stopped can be cut off (`server/slow_readers.py`): ASGI has no
way to close a connection, and a closing transport waits for its buffer to drain.

Touched internals, each guarded by `tests/server/test_http_limits.py`, which drives the real
server over raw sockets: `HttpToolsProtocol` and its `connection_made`, `data_received`,
`on_headers_complete`, `on_response_complete`, `connection_lost`, `transport`, `loop` and
`scope` attributes, and `uvicorn.Config(http=<protocol class>)`; `tests/server/test_slow_readers.py`
guards the transport in the scope. With `answer_early` (`server/early_shed.py`), the bytes
of a request that starts on an idle connection are offered to it before uvicorn parses
them; an answer it gives is written there and then, and the connection's keep-alive timer
armed again as after any answer — touching `on_message_begin`, `on_message_complete`,
`cycle.response_complete`, `pipeline`, `flow.write_paused`, `client`,
`server_state.default_headers`, `_unset_keepalive_if_required`, `timeout_keep_alive_task`,
`timeout_keep_alive` and `timeout_keep_alive_handler`, guarded by
`tests/server/test_early_shed.py` on the real server.
`SignalsLeftAlone` is uvicorn's `Server` without its signal handling: `Server.serve` wraps
itself in `capture_signals()` (not documented), which installs its own handlers and, after
shutting down, raises the signal again — a KeyboardInterrupt traceback at the end of a
clean Ctrl-C. `server/serving.py` handles the signals itself. Guarded in
`tests/compat/test_compat.py`. It also reports, on each of uvicorn's ticks (`on_tick`, every
tenth of a second from its main loop), how many connections are open (`server_state.connections`:
`server/memory_release.py`); guarded there too.
Each request's `cycle` gets a `Coalescing` transport
(`cycle.transport`, which uvicorn's `RequestResponseCycle.send` writes through; guarded in
`tests/compat/test_compat.py`): the response's head leaves with the first bytes of its body.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

log = logging.getLogger("gateway.server")


class SignalsLeftAlone(uvicorn.Server):
    """uvicorn's server, its `capture_signals` doing nothing and its ticks reported (see the
    module doc)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    async def on_tick(self, counter: int) -> bool:
        self.ticked(len(self.server_state.connections))
        return await super().on_tick(counter)

    def ticked(self, connections: int) -> None:
        """Every tenth of a second (uvicorn's tick), with how many connections are open."""


def _answer(status: str, text: str) -> bytes:
    body = text.encode()
    head = f"HTTP/1.1 {status}\r\ncontent-type: text/plain; charset=utf-8\r\n"
    return head.encode() + b"content-length: %d\r\nconnection: close\r\n\r\n" % len(body) + body


EXTENSION = "gateway.connection"


def transport_of(scope: Any) -> asyncio.Transport | None:
    """The connection a request came on (None when not served by `guarded_protocol`)."""
    found = scope.get("extensions", {}).get(EXTENSION)
    return found.get("transport") if isinstance(found, dict) else None


TOO_LARGE = _answer("431 Request Header Fields Too Large", "The request's headers are too large.")
TIMED_OUT = _answer("408 Request Timeout", "The request's headers did not arrive in time.")


COALESCE_BYTES = 16 * 1024  # a first body write up to this size leaves with the head


class Coalescing:
    """A response's transport whose head waits to leave with the body's first bytes: one
    write (one packet, one system call) instead of two when both are sent in the same turn
    of the loop — uvicorn writes the status line and headers as soon as the response
    starts. Whatever is held leaves at the end of the turn in any case, and before a close."""

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._held: bytes | None = None
        self._head = True  # the next write is the head: held

    def write(self, data: bytes) -> None:
        if self._held is not None:
            held, self._held = self._held, None
            if len(data) > COALESCE_BYTES:  # not worth copying a large body for
                self._transport.write(held)
            else:
                data = held + data
        elif self._head and not self._transport.is_closing():
            self._head, self._held = False, data
            self._loop.call_soon(self.release)
            return
        self._head = False
        self._transport.write(data)

    def release(self) -> None:
        """Whatever is held leaves now (the turn ends, or the response is complete)."""
        if self._held is not None:
            held, self._held = self._held, None
            if not self._transport.is_closing():
                self._transport.write(held)

    def close(self) -> None:
        self.release()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


# (bytes read, the client's address, the server's default headers) → (an answer, whether
# to close after it), or None: the request is parsed and served as usual
EarlyAnswer = Callable[[bytes, Any, Iterable[tuple[bytes, bytes]]], tuple[bytes, bool] | None]


def forwarded_client(trusted_hosts: list[str] | str) -> Callable[[Any, bytes], Any]:
    """The client address uvicorn's `ProxyHeadersMiddleware` (with these trusted hosts)
    would give a request from `client` carrying this `X-Forwarded-For` — for a request
    answered before that middleware sees it. Drives the middleware itself (it awaits
    nothing but the app, here one that records the address); guarded in test_early_shed."""
    from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

    found: list[Any] = []

    async def record(scope: Any, receive: Any, send: Any) -> None:
        found.append(scope.get("client"))

    middleware = ProxyHeadersMiddleware(record, trusted_hosts)

    def client_of(client: Any, x_forwarded_for: bytes) -> Any:
        found.clear()
        scope = {
            "type": "http",
            "client": client,
            "headers": [(b"x-forwarded-for", x_forwarded_for)],
        }
        step = middleware(scope, None, None)  # type: ignore[arg-type]
        try:
            step.send(None)
        except StopIteration:
            return found[0] if found else client
        step.close()  # it waited on something: not the middleware this was written for
        return client

    return client_of


def guarded_protocol(
    max_header_bytes: int, header_timeout: float, answer_early: EarlyAnswer | None = None
) -> type[asyncio.Protocol]:
    class GuardedProtocol(HttpToolsProtocol):
        """uvicorn's httptools protocol with a bounded, timed request head — and, with
        `answer_early`, a request answered from its bytes before it is parsed."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._awaiting_head = True
            self._head_bytes = 0
            self._head_timer: asyncio.TimerHandle | None = None
            self._in_message = False  # the parser holds part of a request

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._await_head()

        def data_received(self, data: bytes) -> None:
            ask = answer_early if self._between_requests() else None  # (before it counts)
            if self._awaiting_head:
                end = data.find(b"\r\n\r\n")
                self._head_bytes += len(data) if end < 0 else end + 4
                if self._head_bytes > max_header_bytes:
                    self._refuse(TOO_LARGE)
                    return
            if ask is not None:
                try:
                    early = ask(data, self.client, self.server_state.default_headers)
                except Exception:  # a fault of the early answer's: the whole way answers
                    log.exception("answering a request from its bytes failed")
                    early = None
                if early is not None:
                    self._answered_early(*early)
                    return
            super().data_received(data)

        def on_message_begin(self) -> None:
            self._in_message = True
            super().on_message_begin()

        def on_message_complete(self) -> None:
            self._in_message = False
            super().on_message_complete()

        def _between_requests(self) -> bool:
            """Nothing of a request read yet, none being answered, none queued behind, and
            the client reading what it is sent (else the whole way holds it back)."""
            answering = self.cycle is not None and not self.cycle.response_complete
            return (
                self._awaiting_head
                and not self._head_bytes
                and not self._in_message
                and not answering
                and not self.pipeline
                and not self.flow.write_paused
            )

        def _answered_early(self, answer: bytes, close: bool) -> None:
            self.transport.write(answer)
            if close:
                self._refuse(b"")
                return
            self._unset_keepalive_if_required()  # idle again: its keep-alive starts anew
            self.timeout_keep_alive_task = self.loop.call_later(
                self.timeout_keep_alive, self.timeout_keep_alive_handler
            )
            self._await_head()

        def on_headers_complete(self) -> None:
            self._awaiting_head = False
            self._cancel_timer()
            extensions = self.scope.setdefault("extensions", {})
            extensions[EXTENSION] = {"transport": self.transport}
            super().on_headers_complete()
            if self.cycle is not None and self.cycle.transport is self.transport:
                self.cycle.transport = Coalescing(self.transport, self.loop)  # type: ignore[assignment]

        def on_response_complete(self) -> None:
            if self.cycle is not None and isinstance(self.cycle.transport, Coalescing):
                self.cycle.transport.release()  # a response with no body (HEAD) included
            super().on_response_complete()
            if not self.transport.is_closing():
                self._await_head()

        def connection_lost(self, exc: Exception | None) -> None:
            self._cancel_timer()
            super().connection_lost(exc)

        def _await_head(self) -> None:
            self._awaiting_head, self._head_bytes = True, 0
            self._cancel_timer()
            self._head_timer = self.loop.call_later(header_timeout, self._head_timed_out)

        def _head_timed_out(self) -> None:
            self._head_timer = None
            if self._awaiting_head and not self.transport.is_closing():
                self._refuse(TIMED_OUT if self._head_bytes else b"")

        def _refuse(self, answer: bytes) -> None:
            self._awaiting_head = False
            self._cancel_timer()
            if answer:
                self.transport.write(answer)
            self.transport.close()

        def _cancel_timer(self) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None

    return GuardedProtocol
