"""A response-cache hit answered from the request's bytes, before uvicorn parses them.

A dashboard polling the same request is, most of the time, a stored answer, and finding it
costs a few microseconds; what the answer costs is the machinery around it — uvicorn's
parse and its request-response cycle (a task per request), the ASGI messages, the
middleware each wrapping `send`. `EarlyHits.answer` is asked by the connection's protocol
(through `EarlyShed`, when the gate would not shed the request: `_compat/uvicorn.
guarded_protocol`) with the bytes it just read: when they are exactly one whole `POST
/graphql` (`early_shed.whole_post`) that the endpoint finds stored and admits without
awaiting anything (the whole way's checks in its order: `GraphQLEndpoint.cacheable_now` —
headers, the caller —, then `cached_now` — the stored answer for this caller and this body
byte for byte, a slot, its rate), the answer is written there and then. What a request's
bytes say (`cacheable_now`) depends on them and the configuration alone, and a dashboard
sends the same bytes again and again: it is remembered by their digest (up to 512
distinct requests of at most 4 KiB, then all forgotten; the caller as its principal, no
credential kept); what the store, the gate and the rate bucket say is asked every time.

It answers what the response cache's early look (`cached_answers.py`) answers: the same
status, body, `Content-Type`, `Cache-Control`, `X-Request-Id` and the server's date; the
same access line (`response_cache=hit`), request metrics, admission event (`admitted`) and
response-cache event (`hit`). Anything else goes on untouched, and nothing is taken on its
way — the whole way judges it as before: a miss (counted there; an identical request
running is joined there), no room, a refusal, a JWT (its keys may have to be fetched), a
store shared with other replicas (Redis: a look-up is a round trip), a request with an
`Origin` when CORS is configured, chunked or with `Upgrade`, in several reads, pipelined,
with a query string, HTTP/1.0. Not installed when tracing is on (as the early shed).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterable
from typing import Any

from gateway.observability import log_context
from gateway.server.early_shed import Answer, Record, Reply, whole_post
from gateway.server.endpoint import Cacheable
from gateway.server.media import content_type

OK = b"HTTP/1.1 200 OK"
MAX_REMEMBERED = 512  # distinct requests whose reading is remembered (then all forgotten)
MAX_REMEMBERED_BYTES = 4096  # a larger request is read every time (≤ 2 MiB remembered)
UNSEEN: Any = object()


class EarlyHits:
    def __init__(self, state: Any, record: Record, *, cors: bool) -> None:
        self.state = state  # the app's: its endpoint (`state.graphql`) once it has started
        self.record = record
        self.cors = cors
        self._types: dict[str, tuple[bytes, bytes]] = {}  # media → its Content-Type header
        self._endpoint: Any = None
        # A request's bytes (by their digest) → what they say, or None: a dashboard sends
        # the same bytes again and again, and what they say is decided by them and the
        # configuration alone (`GraphQLEndpoint.cacheable_now`). Neither holds a credential:
        # the caller is kept as its principal, the headers as what the answer needs.
        self._read: dict[bytes, tuple[Reply, Cacheable] | None] = {}

    def answer(
        self, data: bytes, client: Any, default_headers: Iterable[tuple[bytes, bytes]] = ()
    ) -> tuple[bytes, bool] | None:
        """(the answer's bytes, whether to close the connection after them) when `data` is
        a request the response cache answers now; None: it goes the whole way."""
        endpoint = getattr(self.state, "graphql", None)
        if endpoint is None or endpoint.response_cache is None:
            return None
        started = time.perf_counter()
        if endpoint is not self._endpoint:  # (a new app's: nothing read for it yet)
            self._endpoint, self._read = endpoint, {}
        if len(data) > MAX_REMEMBERED_BYTES:
            read = self._reading(endpoint, data)
        else:
            digest = hashlib.blake2b(data, digest_size=16).digest()
            read = self._read.get(digest, UNSEEN)
            if read is UNSEEN:
                read = self._reading(endpoint, data)
                if len(self._read) >= MAX_REMEMBERED:
                    self._read.clear()
                self._read[digest] = read
        if read is None:
            return None
        reply, asked = read
        found = endpoint.cached_now(asked)
        if found is None:
            return None
        stored = found.stored
        stats = log_context.RequestStats()
        stats.operation_type, stats.operation_name = "query", stored.operation_name
        stats.accounts, stats.outcome, stats.response_cache = stored.accounts, "ok", "hit"
        kind = self._types.get(found.media)
        if kind is None:
            kind = self._types[found.media] = (b"content-type", content_type(found.media).encode())
        answer = Answer(OK, (kind,), stored.body, stats, found.client)
        return self.record.answered(reply, answer, client, default_headers, started)

    def _reading(self, endpoint: Any, data: bytes) -> tuple[Reply, Cacheable] | None:
        """What `data` says: one whole request the response cache may answer, or None."""
        post = whole_post(data)
        if post is None:
            return None
        raw = post.headers
        if b"transfer-encoding" in raw or b"upgrade" in raw or (self.cors and b"origin" in raw):
            return None
        headers = {name.decode("latin-1"): value.decode("latin-1") for name, value in raw.items()}
        asked = endpoint.cacheable_now(headers, post.body)
        return None if asked is None else (Reply.to(post), asked)
