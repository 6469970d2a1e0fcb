"""`POST /graphql` (and `GET /metrics`): everything a request meets before GraphQL runs.

In order, each step refusing cheaply with its HTTP status in the GraphQL error shape:
credentials (401, all bad ones alike); the client's rate
(429 with Retry-After); for POST, `application/json` only (415, so no form or text body can
ride a browser's cookies), a body no larger than the limit (413, checked against
Content-Length and while reading, never reading past it), a JSON object (400: no batches,
no `query` of the wrong type, no variables nested deeper than the limit). Then the response
cache, then Strawberry; every answer leaves with `Cache-Control: no-store`. A document
using `@defer`/`@stream` (or a client that accepts only parts) is answered in parts instead
(`incremental.py`): past the same checks, without the response cache.

The steps' parts live beside it: reading and checking the payload (`payload.py`), what
the document would run (`operation_shape.py`), and how a request ended and what a refusal
answers (`outcomes.py`).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from cross_web import HTTPException  # what Strawberry's views raise (its own dependency)
from graphql import (
    InitialIncrementalExecutionResult,
    OperationType,
)
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from strawberry.types.graphql import OperationType as StrawberryOperation

from gateway._compat.asyncio import TURN, Turn, first_steps
from gateway._compat.starlette import set_body, set_query
from gateway.access import Principal
from gateway.cache.handout import Handout
from gateway.cache.responses import (
    NAMES_NOT_A_QUERY,
    CachedRequest,
    ResponseCache,
    StoredResponse,
)
from gateway.clock import Clock
from gateway.config.documents import TrustedDocumentsSettings
from gateway.config.security import RequestLimits
from gateway.errors import GatewayError, Overloaded, RateLimited
from gateway.observability import log_context, request_trace
from gateway.observability.log_context import client_name
from gateway.observability.metrics import Metrics
from gateway.observability.request_trace import RequestTrace
from gateway.schema.context import Context
from gateway.server.admission import Admission, Kind
from gateway.server.auth import Authenticator
from gateway.server.documents import TrustedDocuments, requested_id
from gateway.server.held_slot import HeldUntilSent, Once
from gateway.server.incremental import Framing, Parts
from gateway.server.incremental import body as incremental_body
from gateway.server.media import (
    GRAPHQL_RESPONSE,
    JSON,
    LEGACY_MULTIPART,
    content_type,
    negotiate,
    streaming,
)
from gateway.server.operation_shape import (
    MUTATION_IN_PARTS,
    MUTATION_OVER_GET,
    NOT_IN_PARTS,
    kind_of,
    shape_of,
)
from gateway.server.outcomes import (
    GONE,
    classify,
    refusal,
    until_disconnected,
    while_connected,
)
from gateway.server.payload import body_refusal, checked_payload, get_payload, read_capped
from gateway.server.rate_limit import RateLimiter
from gateway.server.refused import Refused
from gateway.server.shared_answers import DECLINED, Declined, Leader, Outcome, SharedAnswers
from gateway.server.view import GatewayGraphQL
from gateway.services.balances import DATETIME_RESOLUTION, BalanceService
from gateway.services.daily_close import DailyCloseService
from gateway.services.topups import TopUpService
from gateway.services.transactions import TransactionService

GET_REFUSED = Refused(
    405,
    "GET is off: POST the query as application/json, or set `allow_get = true` in [limits] "
    "to allow queries over GET.",
    headers={"Allow": "POST"},
)


LATE = Overloaded(
    "The request could not be answered within its deadline: retry shortly.",
    retry_after_seconds=1,
)
MAX_IDENTITIES = 10_000  # visible accounts remembered for this many callers (JWTs vary)
LEARNT = "gateway.learnt"  # scope key: what the early look at the response cache learnt


@dataclass
class Learnt:
    """What the response cache's early look (`cached_answers.py`) learnt of a request, for
    the whole way to reuse rather than repeat: who asks (or why not), whether its rate
    token is taken, the cache key it looked up and missed."""

    principal: Principal | GatewayError
    media: str
    rate_taken: bool = False
    cache_key: str | None = None
    declined: bool = False  # an identical request's answer was not for it: it runs alone


@dataclass(frozen=True)
class Cacheable:
    """A request the response cache may answer without awaiting anything
    (`GraphQLEndpoint.cacheable_now`): its body, the media type to answer in, who asks."""

    body: bytes
    media: str
    principal: Principal


@dataclass(frozen=True)
class CachedNow:
    """A response-cache hit found without awaiting (`GraphQLEndpoint.cached_now`): the
    stored answer, the media type to send it in, who asked."""

    stored: StoredResponse
    media: str
    client: str


NOT_ACCEPTABLE = Refused(
    406, f"Accept {GRAPHQL_RESPONSE} or {JSON}: the gateway answers in no other type."
)


def as_graphql_response(response: Response, request: Request) -> Response:
    """Strawberry's JSON answer as application/graphql-response+json: a request error
    (nothing executed) becomes 400 without `data`; anything executed stays 200."""
    media_type = content_type(GRAPHQL_RESPONSE)
    if response.status_code == 200 and getattr(request.state, "request_error", False):
        payload = orjson.loads(response.body)
        payload.pop("data", None)
        log_context.stats().outcome = "client_error"  # a GraphQL error, not a refusal
        return Response(orjson.dumps(payload), 400, media_type=media_type)
    response.headers["content-type"] = media_type
    return response


class GraphQLEndpoint:
    def __init__(
        self,
        graphql: GatewayGraphQL,
        service: BalanceService,
        transactions: TransactionService,
        topups: TopUpService,
        authenticator: Authenticator,
        rate_limiter: RateLimiter,
        response_cache: ResponseCache | None,
        metrics: Metrics,
        clock: Clock,
        limits: RequestLimits,
        default_fresh_seconds: float,
        body_timeout_seconds: float = 30.0,
        deadline_seconds: float = 9.0,
        admission: Admission | None = None,
        documents: TrustedDocuments | None = None,
        daily_close: DailyCloseService | None = None,
        turn: Turn = TURN,
        handout: Handout | None = None,
    ) -> None:
        self.graphql = graphql
        self.turn = turn
        self.daily_close = daily_close
        self.service = service
        self.transactions = transactions
        self.topups = topups
        self.authenticator = authenticator
        self.rate_limiter = rate_limiter
        self.response_cache = response_cache
        self.metrics = metrics
        self.clock = clock
        self.limits = limits
        self.documents = documents or TrustedDocuments(TrustedDocumentsSettings())
        self.default_fresh_seconds = default_fresh_seconds
        self.body_timeout_seconds = body_timeout_seconds
        self.deadline_seconds = deadline_seconds
        self.admission = admission or Admission(100_000, 0, 0.0, metrics)
        self._visible_to: dict[str, list[str]] = {}  # by principal identity
        self._cache_hits = metrics.response_cache_events.labels("hit")
        self.shared = SharedAnswers(handout)

    async def __call__(self, request: Request) -> Response:
        """Answered within the deadline (or not at all: a 503 instead of a late answer),
        and abandoned if the client goes away. Admitted (`admission.py`) once it is known
        who asks and whether for a query or a mutation: shed with a 503 otherwise."""
        deadline = asyncio.get_running_loop().time() + self.deadline_seconds
        with self.metrics.graphql_in_flight.track_inprogress():
            try:
                response = await self._handle(request, deadline)
            except GatewayError as exc:
                response = refusal(exc)
        return self._finished(response)

    @staticmethod
    def _finished(response: Response) -> Response:
        response.headers.setdefault("Cache-Control", "no-store")
        if not isinstance(response, StreamingResponse):  # a stream does when it ends
            classify(response.status_code, log_context.stats())
        return response

    async def principal(self, request: Request) -> Principal:
        """Who is calling, within their rate; raises a refusal otherwise."""
        learnt: Learnt | None = request.scope.get(LEARNT)  # `before_body` asked already
        known = None if learnt is None else learnt.principal
        if isinstance(known, GatewayError):
            raise known
        principal = known or await self.authenticator.authenticate(request.headers)
        client_name.set(principal.name)
        if learnt is not None and learnt.rate_taken:
            return principal
        wait = await self.rate_limiter.take(principal)
        if wait is not None:
            self.metrics.rate_limit_refusals.inc()
            raise RateLimited("Too many requests.", retry_after_seconds=wait)
        return principal

    async def admit(
        self, request: Request, kind: Kind, deadline_seconds: float
    ) -> Callable[[], None] | None:
        """A slot taken — what gives it back, which may be called any number of times —
        or None if the client left while waiting for one; raises `Overloaded` when shed.
        A wait is watched for the client leaving, so its place in the queue is given up
        at once."""
        admission = self.admission
        if not admission.try_enter(kind):
            if not admission.may_wait():  # shed at once (raises): no watch started for it
                await admission.take(kind, deadline_seconds)
            elif not await while_connected(request, admission.take(kind, deadline_seconds)):
                return None
        return Once(functools.partial(admission.release, kind))

    async def _handle(self, request: Request, deadline: float) -> Response:
        accept = request.headers.get("accept")
        media, parts_media = negotiate(accept), streaming(accept)
        if media is None and parts_media is None:
            raise NOT_ACCEPTABLE
        principal = await self.principal(request)
        if request.method == "GET":
            payload, trusted = await self._from_get(request, principal)
        else:  # POST, the route's only other method
            payload, trusted = await self._from_post(request, principal)
        document: str = payload["query"]
        operation_name = payload.get("operationName")
        kind = kind_of(shape_of(document, operation_name, self.limits.max_tokens).operation)
        cache_key = await self._cache_key_of(request, principal, payload, media)
        leader = None
        learnt: Learnt | None = request.scope.get(LEARNT)
        declined = learnt is not None and learnt.declined  # by `answer_from_cache`'s wait
        while cache_key is not None and not declined:
            running = self.shared.running(cache_key)
            if running is None:  # no await between the look and the claim: one leads
                leader = self.shared.lead(cache_key)
                break
            joined = await self._joined(running, media, deadline)  # taking no slot
            if isinstance(joined, Response):
                return joined
            declined = joined is DECLINED  # it ran, its answer is not for this one
        if declined:
            self._response_cache_event("miss")  # it runs on its own
        try:
            release = await self.admit(request, kind, deadline - asyncio.get_running_loop().time())
            if release is None:
                return Response(status_code=GONE)
            try:
                response = await self._admitted(
                    request, principal, payload, trusted, media, parts_media, deadline, kind, leader
                )
            except BaseException:
                release()
                raise
            if isinstance(response, StreamingResponse):  # in parts: held until the last is sent
                return HeldUntilSent(response, release)
            release()
            return response
        finally:
            if leader is not None:
                leader.close()

    async def _admitted(
        self,
        request: Request,
        principal: Principal,
        payload: dict[str, Any],
        trusted: bool,
        media: str | None,
        parts_media: str | None,
        deadline: float,
        kind: Kind,
        leader: Leader | None,
    ) -> Response:
        operation_name = payload.get("operationName")
        if media is None or self._in_parts_asked(payload):
            if parts_media is None:
                raise NOT_IN_PARTS
            return await self._in_parts(request, principal, payload, media, parts_media, deadline)
        # A traced request is answered afresh, its trace never stored nor served again.
        trace = RequestTrace() if request_trace.wanted(request.headers, principal.scopes) else None
        if leader is not None:
            learnt: Learnt | None = request.scope.get(LEARNT)
            missed = learnt is not None and learnt.cache_key is not None  # looked up early
            hit = None if missed else await self._stored(leader.key)
            self._response_cache_event("hit" if hit else "miss")
            if hit is not None:
                leader.share(hit, self.clock())  # for those that asked before it was found
                return self._answered_with(hit, media)
        context = self.context_for(request, principal, operation_name)
        context.trace = trace
        # A query is answered by its deadline or not at all, and cancelled if its client
        # goes; anything naming a mutation runs to its end (its upstream calls have their
        # own timeouts), so a top-up's outcome is recorded rather than left to its lease.
        cancellable = kind != "mutation"
        # Its upstream calls sent in the turn it runs — before the identical requests read
        # in that turn are set waiting for it — only for a request others may join, and
        # while the worker has room (`_compat/asyncio.started`, `Admission.roomy`).
        roomy = leader is not None and self.admission.roomy()
        try:
            async with asyncio.timeout_at(deadline if cancellable else None):
                with request_trace.tracing(trace), first_steps(self.turn if roomy else None):
                    response = await until_disconnected(
                        request, self.graphql.run(request, context=context), cancellable
                    )
        except HTTPException as exc:  # Strawberry's own refusals, in our error shape
            if leader is not None:
                leader.decline()  # the same request would be refused the same way
            return refusal(Refused(exc.status_code, exc.reason))
        except TimeoutError:
            stats = log_context.stats()
            stats.outcome, stats.reason = "refused", "deadline"
            return refusal(LATE)
        if media == GRAPHQL_RESPONSE:
            response = as_graphql_response(response, request)
        if (
            leader is not None
            and response.status_code == 200
            and context.cacheable
            and not getattr(request.state, "graphql_errors", False)
        ):
            stats = log_context.stats()
            stored = StoredResponse(bytes(response.body), stats.operation_name, stats.accounts)
            leader.share(stored, context.fresh_until)  # to identical requests waiting on it
            if self.response_cache is not None:
                await self.response_cache.put(leader.key, stored, context.cache_until)
        elif leader is not None:
            leader.decline()
        if trace is not None:  # a trace is for this request: no cache keeps it
            response.headers["Cache-Control"] = "no-store"
        elif trusted and request.method == "GET":
            self._cacheable_by_http(request, response, context)
        return response

    def _in_parts_asked(self, payload: dict[str, Any]) -> bool:
        """Whether the document asks for its answer in parts (`@defer`, `@stream`)."""
        document: str = payload["query"]
        operation_name = payload.get("operationName")
        return (
            "@" in document and shape_of(document, operation_name, self.limits.max_tokens).in_parts
        )

    async def _stored(self, key: str) -> StoredResponse | None:
        """The stored answer for `key`, if the response cache holds one."""
        return None if self.response_cache is None else await self.response_cache.get(key)

    async def _joined(
        self, running: asyncio.Future[Outcome], media: str | None, deadline: float
    ) -> Response | Declined | None:
        """The answer of an identical request running now (`shared_answers.py`) if it is
        handed to this request, or a refusal if that one is not done by this request's
        deadline; DECLINED: run on its own; None: that one ended without an answer."""
        try:
            async with asyncio.timeout_at(deadline):
                outcome = await self._outcome(running)
        except TimeoutError:
            stats = log_context.stats()
            stats.outcome, stats.reason = "refused", "deadline"
            return refusal(LATE)
        if outcome is None or isinstance(outcome, Declined):
            return outcome
        return self._answered_with(outcome, media)

    async def _outcome(self, running: asyncio.Future[Outcome]) -> StoredResponse | Declined | None:
        """How the identical request running ends for this one, which asks now: its
        answer (counted `joined`), DECLINED (not for this one: it runs on its own), or
        None (that one ended without an answer)."""
        asked_at = self.clock()
        outcome = await self.shared.outcome(running)
        if outcome is None or isinstance(outcome, Declined):
            return outcome
        answer, until = outcome
        if asked_at > until + DATETIME_RESOLUTION:  # older than it would get on its own
            return DECLINED
        self._response_cache_event("joined")
        return answer

    def _response_cache_event(self, event: str) -> None:
        """What the response cache did for this request, counted and in its access line."""
        self.metrics.response_cache_events.labels(event).inc()
        log_context.stats().response_cache = event

    @staticmethod
    def _answered_with(answer: StoredResponse, media: str | None) -> Response:
        stats = log_context.stats()
        stats.operation_type = "query"  # only queries are stored or shared
        stats.operation_name = answer.operation_name
        stats.accounts = answer.accounts
        return Response(answer.body, media_type=None if media is None else content_type(media))

    def _cacheable_by_http(self, request: Request, response: Response, context: Context) -> None:
        """A trusted query over GET that a cache may keep until its first balance stops
        being fresh — per credential: `Vary` names every header that says who asks, so a
        shared cache (a CDN) never hands one client's answer to another."""
        seconds = int(context.cache_until - self.clock())
        if (
            response.status_code != 200
            or not context.cacheable
            or getattr(request.state, "graphql_errors", False)
            or seconds < 1
        ):
            return
        response.headers["Cache-Control"] = f"public, max-age={seconds}"
        response.headers["Vary"] = "Authorization, X-API-Key, Accept, X-Gateway-Trace"

    async def _in_parts(
        self,
        request: Request,
        principal: Principal,
        payload: dict[str, Any],
        media: str | None,
        parts_media: str,
        deadline: float,
    ) -> Response:
        """A query answered in parts as they become known (`incremental.py`): the first
        within the deadline like any answer, the rest as a stream the deadline also
        bounds. A request error, or a result with nothing deferred after all, is answered
        whole when the client accepts a single result."""
        document, operation_name = payload["query"], payload.get("operationName")
        if shape_of(document, operation_name, self.limits.max_tokens).operation == (
            OperationType.MUTATION
        ):
            raise MUTATION_IN_PARTS if media is not None else NOT_ACCEPTABLE
        context = self.context_for(request, principal, operation_name)
        results = await self.graphql.schema.stream(
            document,
            variable_values=payload.get("variables"),
            context_value=context,
            operation_name=operation_name,
            operation_extensions=payload.get("extensions"),
            allowed_operation_types=(StrawberryOperation.QUERY,),
        )
        parts = Parts(self.graphql, request, context, legacy=parts_media == LEGACY_MULTIPART)
        stats = log_context.stats()

        async def first() -> Response:
            try:
                result = await anext(results)
            except BaseException:  # cancelled (the client left, or the deadline passed)
                await results.aclose()
                raise
            if media is not None and not isinstance(result, InitialIncrementalExecutionResult):
                await results.aclose()
                body = self.graphql.encode_json(await parts.payload(result))
                single = Response(body, media_type=JSON)
                return as_graphql_response(single, request) if media == GRAPHQL_RESPONSE else single
            framing = Framing(parts_media)
            return StreamingResponse(
                incremental_body(
                    parts,
                    result,
                    results,
                    framing,
                    deadline,
                    lambda finished: classify(200 if finished else GONE, stats),
                ),
                media_type=framing.media_type,
                headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
            )

        try:
            async with asyncio.timeout_at(deadline):
                return await until_disconnected(request, first(), cancellable=True)
        except TimeoutError:
            stats.outcome, stats.reason = "refused", "deadline"
            return refusal(LATE)

    async def _from_get(
        self, request: Request, principal: Principal
    ) -> tuple[dict[str, Any], bool]:
        """A GET's parameters as a payload, its `query` the document to run (a trusted one
        may use GET even with `allow_get` off, and is handed on as if the client had sent
        its text), and whether it is trusted."""
        params = dict(request.query_params)
        requested = get_payload(params)
        if not (
            self.limits.allow_get
            or requested_id(requested) is not None
            or self.documents.mode_for(principal) == "enforce"  # its refusal says more
        ):
            raise GET_REFUSED  # before reading the document: GET itself is off
        document, trusted = await self.documents.resolve(requested, principal)
        shape = shape_of(document, params.get("operationName"), self.limits.max_tokens)
        if shape.operation == OperationType.MUTATION:
            raise MUTATION_OVER_GET
        if document != params.get("query"):  # named by its id: handed on as its text
            set_query(request, {**params, "query": document})
        return {**requested, "query": document}, trusted

    async def _from_post(
        self, request: Request, principal: Principal
    ) -> tuple[dict[str, Any], bool]:
        """A POST's checked payload, its `query` the document to run (a trusted one named by
        id is handed on as if the client had sent its text), and whether it is trusted."""
        payload = await self.read_post(request)
        body = request.state.body
        document, trusted = await self.documents.resolve(payload, principal)
        if document != payload.get("query"):  # named by its id: handed on as its text
            payload = {**payload, "query": document}
            body = orjson.dumps(payload)
        set_body(request, body)  # Strawberry reads it there, not from the stream
        return payload, trusted

    def context_for(
        self, request: Request, principal: Principal, operation_name: str | None
    ) -> Context:
        """A request's GraphQL context (its answer cacheable, at most, for the default
        fresh window: each balance read shortens that)."""
        return Context(
            request=request,
            balance_service=self.service,
            transactions=self.transactions,
            topups=self.topups,
            daily_close=self.daily_close,
            principal=principal,
            max_accounts=self.limits.max_accounts,
            cache_until=self.clock() + self.default_fresh_seconds,
            operation_name=operation_name,
        )

    async def read_post(self, request: Request) -> dict[str, Any]:
        """A POST's body, read within the limits and checked (kept in `request.state.body`)."""
        refused = body_refusal(request.headers)
        if refused is not None:
            raise refused
        body = await read_capped(request, self.limits.max_body_bytes, self.body_timeout_seconds)
        request.state.body = body
        return checked_payload(body, self.limits)

    async def _cache_key_of(
        self, request: Request, principal: Principal, payload: dict[str, Any], media: str | None
    ) -> str | None:
        """The response-cache key of a request that may be answered from the cache or be
        sent an identical request's answer: a POSTed query, answered whole, not traced
        (its key already computed if it was looked up before its body was read)."""
        if (
            self.response_cache is None
            or request.method != "POST"
            or media is None
            or request_trace.wanted(request.headers, principal.scopes)
        ):
            return None
        cacheable = CachedRequest.from_payload(payload, request.state.body)
        if cacheable is None or self._in_parts_asked(payload):
            return None
        learnt: Learnt | None = request.scope.get(LEARNT)
        known = None if learnt is None else learnt.cache_key
        return known or await self._key(self.response_cache, cacheable, principal)

    async def _key(self, cache: ResponseCache, request: CachedRequest, principal: Principal) -> str:
        """Who a response is stored for — what the caller may see, and how its documents
        are checked (a stored answer passed that check) — and what was asked."""
        return await cache.key(request, self._caller(principal), self._visible(principal))

    def _caller(self, principal: Principal) -> str:
        return f"{principal.identity}|{self.documents.mode_for(principal)}"

    def _visible(self, principal: Principal) -> list[str]:
        """The accounts `principal` may see (the service's accounts are fixed at start)."""
        visible = self._visible_to.get(principal.identity)
        if visible is None:
            visible = [a.id for a in self.service.accounts() if principal.can_see(a.id)]
            if len(self._visible_to) < MAX_IDENTITIES:
                self._visible_to[principal.identity] = visible
        return visible

    async def before_body(self, scope: Any) -> Learnt | None:
        """Before a POST's body is read for the response cache (`cached_answers.py`): the
        checks the whole way makes before reading it, in its order — headers, the caller
        (authenticated once: the result, a refusal included, is handed on in the scope),
        its rate (a token taken once: a refusal takes none, and the whole way refuses it
        again, in its words). None: nothing done that the whole way would not do first —
        it goes the whole way untouched (a refusal, a body of no declared length, too large
        or awaiting `100 Continue`)."""
        if self.response_cache is None:
            return None
        headers = Headers(scope=scope)
        media = self._cacheable_head(headers)
        if media is None:
            return None
        try:
            principal = await self.authenticator.authenticate(headers)
        except GatewayError as exc:
            scope[LEARNT] = Learnt(exc, media)
            return None
        learnt = scope[LEARNT] = Learnt(principal, media)
        if await self.rate_limiter.take(principal) is not None:
            return None  # refused the whole way, where the refusal is counted and worded
        learnt.rate_taken = True
        client_name.set(principal.name)
        return learnt

    def _cacheable_head(self, headers: Mapping[str, str]) -> str | None:
        """The media type to answer in, when a request with these headers may be answered
        from the response cache: the whole way would read its body (no refusal from the
        headers alone, a declared length within bounds, no `100 Continue`) and no trace
        is asked for. None: it goes the whole way."""
        if request_trace.TRACE_HEADER in headers:
            return None  # a trace asked for: never answered from the cache
        media = negotiate(headers.get("accept"))
        declared = headers.get("content-length", "")
        if (
            media is None
            or body_refusal(headers) is not None
            or "expect" in headers
            or not declared.isdigit()
            or int(declared) > self.limits.max_body_bytes
        ):
            return None
        return media

    def cacheable_now(self, headers: Mapping[str, str], body: bytes) -> Cacheable | None:
        """What a request's headers and body say for an answer from the response cache
        without awaiting anything (`early_hits.py`), in the whole way's order: headers,
        then the caller — where each is this process's (an in-process store, an API key).
        Depends on nothing but them and the configuration: a request sent again byte for
        byte says the same. None: it goes the whole way (a refusal, a JWT, a shared store,
        a body that names a mutation or subscription)."""
        cache = self.response_cache
        if cache is None or not cache.store.in_process or NAMES_NOT_A_QUERY.search(body):
            return None
        media = self._cacheable_head(headers)
        principal = None if media is None else self.authenticator.without_io(headers)
        if media is None or principal is None:
            return None
        return Cacheable(body, media, principal)

    def cached_now(self, asked: Cacheable) -> CachedNow | None:
        """Its stored answer, found and admitted without awaiting anything: the rest of the
        whole way's checks for a response-cache hit — the stored answer for this caller and
        this body byte for byte, a slot, the caller's rate. None, with nothing taken or
        counted: it goes the whole way (a miss, no room, a rate refusal)."""
        cache, principal = self.response_cache, asked.principal
        if cache is None:
            return None
        visible = self._visible(principal)
        key = cache.key_now(CachedRequest(asked.body), self._caller(principal), visible)
        stored = cache.get_now(key)
        if stored is None or not self.admission.has_room("query"):
            return None  # a miss (counted there), or no room now: the whole way decides
        if not self.rate_limiter.take_now(principal):
            return None  # refused there, in its words (a refusal takes no token)
        self.admission.passes("query")  # (it has room: nothing ran since)
        self._cache_hits.inc()
        cache.counted_hit(visible)
        return CachedNow(stored, asked.media, principal.name)

    async def _joined_early(self, learnt: Learnt, key: str) -> StoredResponse | None:
        """The answer of an identical request running now, for a request not yet parsed:
        the same bytes as the one running (which passed every check on them), from the
        same caller — so it waits here, taking no slot (`shared_answers.py`). None: it
        goes the whole way (which counts it a miss), to take the place of one that ended
        without an answer, or to run alone (`declined`)."""
        running = self.shared.running(key)
        if running is None:
            return None
        try:
            async with asyncio.timeout(self.deadline_seconds):  # the one running ends first
                outcome = await self._outcome(running)
        except TimeoutError:
            return None
        if isinstance(outcome, Declined):
            learnt.declined = True
            return None
        return outcome

    def body_too_slow(self) -> Response:
        """The whole way's answer to a body that did not arrive in time."""
        late = Refused(
            408, f"The request body did not arrive within {self.body_timeout_seconds:g} s."
        )
        return self._finished(refusal(late))

    async def answer_from_cache(self, learnt: Learnt, body: bytes) -> StoredResponse | None:
        """The stored answer for this body, from this caller (`before_body` let it through),
        admitted as a query — or None, and it goes the whole way, which then reuses the key
        looked up here (a miss is counted there) or sheds it. Bodies that name a mutation
        or subscription are not looked up."""
        cache = self.response_cache
        principal = learnt.principal
        if cache is None or not isinstance(principal, Principal) or NAMES_NOT_A_QUERY.search(body):
            return None
        with self.metrics.graphql_in_flight.track_inprogress():
            key = await self._key(cache, CachedRequest(body), principal)
            hit = await cache.get(key)
            if hit is None:
                learnt.cache_key = key  # a miss: counted, and not looked up again, there
                return await self._joined_early(learnt, key)
            if not self.admission.passes("query"):
                return None  # no room: shed there (or, waiting, looked up again when in)
            self._cache_hits.inc()  # `_response_cache_event("hit")`, its child looked up once
            log_context.stats().response_cache = "hit"
            return hit
