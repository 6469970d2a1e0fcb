"""Shedding a query as its bytes arrive, while the gate is full.

A shed request used to be answered by the whole stack: its bytes read in one turn of the
event loop, its handler run in the next, behind every callback admitted work had made due
meanwhile — two turns of a loop that admission keeps busy (a turn is tens of
milliseconds under load), so a 503 that costs a millisecond to decide reached the client
after 70–100 ms. `EarlyShed.answer` is asked by the connection's protocol
(`_compat/uvicorn.guarded_protocol`) with the bytes it just read, before it parses them:
when the gate would shed a query now (`Admission.full`), and the bytes are exactly one
whole `POST /graphql` whose JSON body asks a query, the 503 is written there and then —
within the turn the bytes were read in.

It answers what the whole way answers (`outcomes.refusal` of `Overloaded`): the same
status, `Retry-After`, body, `Cache-Control`, `X-Request-Id` and the server's date; the
same access line, request metrics and admission event (`rejected`). What it does not do is
what a shed request never needed: the caller is not authenticated first (a busy gateway
sheds before it checks who asks), no rate token is taken.

Anything else goes the whole way, untouched: the gate has room; a mutation or a
subscription (any document whose text names one — a top-up is never shed here); a body of
persisted-query hashes only; a request in several reads, with a query string, chunked,
encoded, awaiting `100 Continue`, or followed by another (pipelined); a request carrying
an `Origin` when CORS is configured (its answer needs CORS headers); HTTP/1.0. Not
installed when tracing is on (the whole way makes the request's span).
"""

from __future__ import annotations

import asyncio
import contextvars
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import orjson

from gateway._compat.uvicorn import EarlyAnswer
from gateway.errors import ErrorCode
from gateway.observability import log_context
from gateway.server.admission import BUSY, Admission
from gateway.server.outcomes import classify
from gateway.server.request_metrics import Observer

REQUEST_LINE = b"POST /graphql HTTP/1.1\r\n"
TOKEN = re.compile(rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+\Z")  # a header's name (RFC 9110)
NOT_IN_VALUE = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")  # controls: not in a value
MAX_LENGTH_DIGITS = 18
HEAD_END = b"\r\n\r\n"
NOT_A_QUERY = re.compile(r"\b(?:mutation|subscription)\b")
JSON = b"application/json"
BODY = orjson.dumps({"errors": [{"message": BUSY, "extensions": {"code": ErrorCode.OVERLOADED}}]})
SCOPE = {"type": "http", "method": "POST", "path": "/graphql"}


@dataclass(frozen=True)
class WholePost:
    """One whole request: its headers (names in lower case) and body."""

    headers: dict[bytes, bytes]
    body: bytes


def whole_post(data: bytes) -> WholePost | None:
    """`data` as exactly one whole HTTP/1.1 `POST /graphql` with a body of declared length
    and nothing after it; None for anything else."""
    if not data.startswith(REQUEST_LINE):
        return None
    end = data.find(HEAD_END)
    if end < 0:
        return None
    headers: dict[bytes, bytes] = {}
    for line in data[len(REQUEST_LINE) : end].split(b"\r\n"):
        name, colon, value = line.partition(b":")
        name = name.lower()
        if not colon or not TOKEN.match(name) or NOT_IN_VALUE.search(value) or name in headers:
            return None  # malformed, or a header twice: the whole way judges it (strictly)
        headers[name] = value.strip(b" \t")
    length = headers.get(b"content-length", b"")
    body = data[end + len(HEAD_END) :]
    if not length.isdigit() or len(length) > MAX_LENGTH_DIGITS or int(length) != len(body):
        return None
    return WholePost(headers, body)


def sheddable(post: WholePost, *, cors: bool) -> bool:
    """Whether the early shed may answer this request: a JSON query, its body neither
    encoded nor awaited (else it goes the whole way)."""
    headers = post.headers
    if b"transfer-encoding" in headers or b"expect" in headers or b"upgrade" in headers:
        return False
    if headers.get(b"content-encoding", b"identity").lower() != b"identity":
        return False
    if headers.get(b"content-type", b"").split(b";")[0].strip().lower() != JSON:
        return False
    if cors and b"origin" in headers:
        return False
    try:
        payload = orjson.loads(post.body)
    except orjson.JSONDecodeError:
        return False
    query = payload.get("query") if isinstance(payload, dict) else None
    return isinstance(query, str) and not NOT_A_QUERY.search(query)


SHED = b"HTTP/1.1 503 Service Unavailable"
JSON_TYPE = (b"content-type", JSON)


@dataclass(frozen=True)
class Reply:
    """What answering a request needs of its headers: whether the client asked for the
    connection to be closed, and the `X-Forwarded-For` it sent (for the access line)."""

    close: bool
    forwarded: bytes | None

    @classmethod
    def to(cls, post: WholePost) -> Reply:
        options = post.headers.get(b"connection", b"").lower().split(b",")
        close = any(option.strip() == b"close" for option in options)
        return cls(close, post.headers.get(b"x-forwarded-for"))


@dataclass(frozen=True)
class Answer:
    """An answer written from a request's bytes: its status line, its own headers, its
    body, and what the request did (for the access line and the request metrics)."""

    status_line: bytes
    headers: tuple[tuple[bytes, bytes], ...]
    body: bytes
    stats: log_context.RequestStats
    client_name: str = "-"

    @property
    def status(self) -> int:
        return int(self.status_line.split(b" ")[1])


class Record:
    """What the whole way does around an answer, for one written from a request's bytes:
    the server's default headers, `Cache-Control: no-store`, a new `X-Request-Id`, the
    connection closed when the client asked, the access line and the request metrics."""

    def __init__(self, observe: Observer | None, *, access: bool) -> None:
        self.observe = observe
        self.access = access
        # how the access line finds the client behind a trusted proxy (serving.py sets it)
        self.forwarded_client: Callable[[Any, bytes], Any] | None = None

    def answered(
        self,
        reply: Reply,
        answer: Answer,
        client: Any,
        default_headers: Iterable[tuple[bytes, bytes]],
        started: float | None = None,
    ) -> tuple[bytes, bool]:
        """(the answer's bytes, whether to close the connection after them), recorded."""
        started = time.perf_counter() if started is None else started
        rid = log_context.new_request_id()
        head = [
            answer.status_line,
            *(b"%s: %s" % pair for pair in default_headers),
            b"content-length: %d" % len(answer.body),
            *(b"%s: %s" % pair for pair in answer.headers),
            b"cache-control: no-store",
            b"x-request-id: " + rid.encode(),
        ]
        if reply.close:
            head.append(b"connection: close")
        if reply.forwarded is not None and self.forwarded_client is not None:
            client = self.forwarded_client(client, reply.forwarded)
        contextvars.Context().run(self._record, rid, client, started, answer)
        return b"\r\n".join(head) + HEAD_END + answer.body, reply.close

    def _record(self, rid: str, client: Any, started: float, answer: Answer) -> None:
        log_context.request_id.set(rid)
        log_context.client_name.set(answer.client_name)
        log_context.set_stats(answer.stats)
        scope = {**SCOPE, "client": client}
        status = answer.status
        if self.observe is not None:
            self.observe(scope, status, time.perf_counter() - started, answer.stats)
        if self.access:
            log_context.write_access_line(scope, status, len(answer.body), started, answer.stats)


class EarlyShed:
    def __init__(
        self, admission: Admission, record: Record, *, cors: bool, hits: EarlyAnswer | None = None
    ) -> None:
        self.admission = admission
        self.record = record
        self.cors = cors
        self.hits = hits  # a response-cache hit answered here (`early_hits.py`)
        self._on_their_way = 0  # requests read this turn that the gate has still to see

    def _went_on(self) -> None:
        """A request to /graphql goes the whole way: most reach the gate in the loop's next
        turn, before any request read after it — so, while the gate is at least half full,
        until then it counts as a slot taken (else a turn's worth of arrivals all pass here
        and are shed the slow way). Some never take a slot (a wrong key, a cached answer):
        a turn of many of those on a half-full gate sheds queries a turn early."""
        self._on_their_way += 1
        if self._on_their_way == 1:
            asyncio.get_running_loop().call_soon(self._arrived)

    def _arrived(self) -> None:
        self._on_their_way = 0

    def answer(
        self, data: bytes, client: Any, default_headers: Iterable[tuple[bytes, bytes]] = ()
    ) -> tuple[bytes, bool] | None:
        """(the 503's bytes, whether to close the connection after them) when `data` is a
        query the gate sheds now; None: the request goes the whole way."""
        if not data.startswith(REQUEST_LINE):
            return None  # not a POST to /graphql: nothing the gate judges
        admission = self.admission
        busy = admission.running * 2 >= admission.limit  # (counting: see _went_on)
        if not admission.full("query", self._on_their_way if busy else 0):
            hit = None if self.hits is None else self.hits(data, client, default_headers)
            if hit is None and busy:
                self._went_on()
            return hit
        started = time.perf_counter()
        post = whole_post(data)
        if post is None or not sheddable(post, cors=self.cors):
            self._went_on()
            return None
        admission.shed("query")
        stats = log_context.RequestStats()  # (shed before its operation is noted)
        classify(503, stats)
        retry_after = (b"retry-after", b"%d" % admission.retry_after())
        answer = Answer(SHED, (retry_after, JSON_TYPE), BODY, stats)
        return self.record.answered(Reply.to(post), answer, client, default_headers, started)
