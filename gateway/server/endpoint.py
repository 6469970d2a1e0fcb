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
"""

from __future__ import annotations

import asyncio
import functools
import json
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

import orjson
from cross_web import HTTPException  # what Strawberry's views raise (its own dependency)
from graphql import (
    DirectiveNode,
    GraphQLError,
    InitialIncrementalExecutionResult,
    OperationType,
    Visitor,
    get_operation_ast,
    parse,
    visit,
)
from starlette.datastructures import Headers
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from strawberry.types.graphql import OperationType as StrawberryOperation

from gateway import bodies
from gateway._compat.starlette import set_body, set_query
from gateway.access import Principal
from gateway.cache.responses import (
    NAMES_NOT_A_QUERY,
    CachedRequest,
    ResponseCache,
    StoredResponse,
)
from gateway.clock import Clock
from gateway.config.documents import TrustedDocumentsSettings
from gateway.config.security import RequestLimits
from gateway.errors import ErrorCode, GatewayError, Overloaded, RateLimited
from gateway.observability import log_context
from gateway.observability.log_context import client_name
from gateway.observability.metrics import Metrics
from gateway.schema.context import Context
from gateway.server.admission import Admission, Kind
from gateway.server.auth import Authenticator
from gateway.server.documents import TrustedDocuments, requested_id
from gateway.server.incremental import Framing, Parts
from gateway.server.incremental import body as incremental_body
from gateway.server.media import (
    EVENT_STREAM,
    GRAPHQL_RESPONSE,
    JSON,
    LEGACY_MULTIPART,
    MULTIPART,
    negotiate,
    streaming,
)
from gateway.server.rate_limit import RateLimiter
from gateway.server.refused import Refused
from gateway.server.view import GatewayGraphQL
from gateway.services.balances import BalanceService
from gateway.services.topups import TopUpService
from gateway.services.transactions import TransactionService

STATUS = {
    ErrorCode.UNAUTHENTICATED: 401,
    ErrorCode.FORBIDDEN: 403,
    ErrorCode.RATE_LIMITED: 429,
    ErrorCode.OVERLOADED: 503,
}


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
GONE = log_context.CLIENT_CLOSED  # 499: only the access log ever sees it
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


async def until_disconnected(
    request: Request, work: Coroutine[Any, Any, Response], cancellable: bool
) -> Response:
    """`work`'s response — unless the client disconnects first: then `cancellable` work is
    cancelled (no CPU or upstream calls for nobody), other work (a mutation) still runs to
    its end, and either way the answer is 499, to nobody."""
    task = asyncio.ensure_future(work)
    watch = asyncio.ensure_future(_disconnect(request))
    try:
        await asyncio.wait((task, watch), return_when=asyncio.FIRST_COMPLETED)
        left = watch.done() and not cancellable  # cancellable: `task` is cancelled below
        if not cancellable:
            await asyncio.wait((task,))
    finally:
        watch.cancel()
        if not task.done():
            task.cancel()
            await asyncio.wait((task,))  # let it unwind before anything else runs
    if task.cancelled():
        return Response(status_code=GONE)
    response = task.result()
    return Response(status_code=GONE) if left else response


async def _disconnect(request: Request) -> None:
    """Returns when the client disconnects (the body has been read by then)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


# Why a request was refused before GraphQL ran, by its HTTP status (a metric label).
REFUSED = {
    400: "bad_request",
    401: "unauthenticated",
    403: "forbidden",
    405: "method_not_allowed",
    408: "timeout",
    413: "too_large",
    406: "not_acceptable",
    415: "unsupported_media_type",
    429: "rate_limited",
    503: "overloaded",
}


def classify(status: int, stats: log_context.RequestStats) -> None:
    """The request's outcome: refused (and why), cancelled, internal, client_error (any
    other GraphQL error), partial (provider failures in place) or ok."""
    if stats.outcome is not None:
        return
    if status == GONE:
        stats.outcome = "cancelled"
    elif status != 200:
        stats.outcome, stats.reason = "refused", REFUSED.get(status, str(status))
    elif ErrorCode.INTERNAL.value in stats.error_codes:
        stats.outcome = "internal"
    elif stats.error_codes:
        stats.outcome = "client_error"
    elif stats.failures:
        stats.outcome = "partial"
    else:
        stats.outcome = "ok"


NOT_ACCEPTABLE = Refused(
    406, f"Accept {GRAPHQL_RESPONSE} or {JSON}: the gateway answers in no other type."
)


NOT_IN_PARTS = Refused(
    406,
    f"@defer and @stream answer in parts: Accept {MULTIPART} or {EVENT_STREAM}.",
)
MUTATION_IN_PARTS = Refused(
    400, "A mutation is answered whole: send it without @defer or @stream, accepting JSON."
)


MUTATION_OVER_GET = Refused(
    405, "A mutation never runs over GET: POST it.", headers={"Allow": "POST"}
)


class Shape(NamedTuple):
    operation: OperationType | None  # None: it does not parse, or names no one operation
    in_parts: bool  # it uses @defer or @stream


class _IncrementalDirectives(Visitor):
    def __init__(self) -> None:
        super().__init__()
        self.found = False

    def enter_directive(self, node: DirectiveNode, *_: Any) -> None:
        if node.name.value in ("defer", "stream"):
            self.found = True


@functools.lru_cache(maxsize=128)  # a dashboard's requests repeat their documents
def shape_of(document: str, operation_name: str | None, max_tokens: int) -> Shape:
    """What a document would run, and whether in parts (GET and event streams refuse
    mutations before running anything; `@defer`/`@stream` need a streaming `Accept`). A
    document that does not parse is left to GraphQL to refuse, in its own words."""
    try:
        parsed = parse(document, no_location=True, max_tokens=max_tokens)
    except GraphQLError:
        return Shape(None, False)
    operation = get_operation_ast(parsed, operation_name)
    directives = _IncrementalDirectives()
    if "@" in document:
        visit(parsed, directives)
    return Shape(None if operation is None else operation.operation, directives.found)


def kind_of(operation: OperationType | None) -> Kind:
    """Admission's word for an operation: a mutation, or anything else (a query)."""
    return "mutation" if operation == OperationType.MUTATION else "query"


def get_payload(params: dict[str, str]) -> dict[str, Any]:
    """A GET's query parameters as the request body they stand for."""
    return {
        "query": params.get("query"),
        "documentId": params.get("documentId"),
        "operationName": params.get("operationName"),
        "extensions": json_object(params.get("extensions"), "extensions"),
        "variables": json_object(params.get("variables"), "variables"),
    }


def json_object(raw: str | None, name: str) -> dict[str, Any] | None:
    """A GET parameter that holds JSON (`extensions`, `variables`): absent, or an object."""
    if raw is None:
        return None
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError):
        value = None
    if not isinstance(value, dict):
        raise Refused(400, f"`{name}` must be a JSON object.")
    return value


def as_graphql_response(response: Response, request: Request) -> Response:
    """Strawberry's JSON answer as application/graphql-response+json: a request error
    (nothing executed) becomes 400 without `data`; anything executed stays 200."""
    media_type = f"{GRAPHQL_RESPONSE}; charset=utf-8"
    if response.status_code == 200 and getattr(request.state, "request_error", False):
        payload = orjson.loads(response.body)
        payload.pop("data", None)
        log_context.stats().outcome = "client_error"  # a GraphQL error, not a refusal
        return Response(orjson.dumps(payload), 400, media_type=media_type)
    response.headers["content-type"] = media_type
    return response


def refusal(exc: GatewayError) -> Response:
    status = exc.status if isinstance(exc, Refused) else STATUS.get(exc.code, 400)
    if status == GONE:  # no one is there to read a body
        return Response(status_code=GONE)
    headers = {"Retry-After": str(exc.retry_after_seconds)} if exc.retry_after_seconds else {}
    if isinstance(exc, Refused):
        headers.update(exc.headers)
    body = {"errors": [{"message": exc.message, "extensions": {"code": exc.code.value}}]}
    return JSONResponse(body, status, headers)


async def read_capped(request: Request, cap: int, within: float) -> bytes:
    """The body, refused past `cap` bytes (413) or past `within` seconds (408): a client
    trickling its body holds a connection no longer than that. A client that leaves before
    its body is whole is the client's doing: `cancelled`, answered 499 to nobody — never
    an exception for the server to log as its own failure."""
    try:
        async with asyncio.timeout(within):
            declared = request.headers.get("content-length")
            return await bodies.read_capped(request.stream(), cap, declared)
    except bodies.TooLarge:
        raise Refused(413, f"The request body is larger than {cap} bytes.") from None
    except TimeoutError:
        raise Refused(408, f"The request body did not arrive within {within:g} s.") from None
    except ClientDisconnect:
        log_context.stats().outcome = "cancelled"
        raise Refused(GONE, "The client closed the connection.") from None


def body_refusal(headers: Mapping[str, str]) -> Refused | None:
    """Why a POST's body will not be read, from its headers alone (None: it will be)."""
    content_type = headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/json":
        return Refused(415, "Send the request as application/json.")
    encoding = headers.get("content-encoding", "identity").strip().lower()
    if encoding != "identity":  # never decompressed, so never read as if it were
        return Refused(415, "Send the body uncompressed: no Content-Encoding.")
    return None


def nesting(value: Any) -> int:
    """Depth of a JSON value, without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, depth)
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
    return deepest


def checked_payload(body: bytes, limits: RequestLimits) -> dict[str, Any]:
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError):
        raise Refused(400, "The body is not valid JSON.") from None
    if isinstance(payload, list):
        raise Refused(400, "Batched requests are not supported: send one operation per request.")
    if not isinstance(payload, dict):
        raise Refused(400, "The body must be a JSON object with a `query`.")
    variables = payload.get("variables")
    if variables is not None and not isinstance(variables, dict):
        raise Refused(400, "`variables` must be an object.")
    if variables and nesting(variables) > limits.max_variables_depth:
        raise Refused(400, f"`variables` nest deeper than {limits.max_variables_depth} levels.")
    if not isinstance(payload.get("operationName") or "", str):
        raise Refused(400, "`operationName` must be a string.")
    extensions = payload.get("extensions")
    if extensions is not None and not isinstance(extensions, dict):
        raise Refused(400, "`extensions` must be an object.")
    return payload


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
    ) -> None:
        self.graphql = graphql
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
        waited = deadline - asyncio.get_running_loop().time()
        async with self.admission.slot(kind, waited):
            return await self._admitted(
                request, principal, payload, trusted, media, parts_media, deadline, kind
            )

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
    ) -> Response:
        document: str = payload["query"]
        operation_name = payload.get("operationName")
        if media is None or (
            "@" in document and shape_of(document, operation_name, self.limits.max_tokens).in_parts
        ):
            if parts_media is None:
                raise NOT_IN_PARTS
            return await self._in_parts(request, principal, payload, media, parts_media, deadline)
        cache_key = None
        if request.method == "POST":
            learnt: Learnt | None = request.scope.get(LEARNT)
            missed = None if learnt is None else learnt.cache_key  # looked up early: a miss
            cache_key = await self._cache_key(payload, request.state.body, principal, missed)
            if cache_key is not None and self.response_cache is not None:
                hit = None if missed else await self.response_cache.get(cache_key)
                self.metrics.response_cache_events.labels("hit" if hit else "miss").inc()
                stats = log_context.stats()
                stats.response_cache = "hit" if hit else "miss"
                if hit is not None:
                    stats.operation_type = "query"  # only queries are cached
                    stats.operation_name = hit.operation_name
                    stats.accounts = hit.accounts
                    return Response(hit.body, media_type=media)
        context = self.context_for(request, principal, operation_name)
        # A query is answered by its deadline or not at all, and cancelled if its client
        # goes; anything naming a mutation runs to its end (its upstream calls have their
        # own timeouts), so a top-up's outcome is recorded rather than left to its lease.
        cancellable = kind != "mutation"
        try:
            async with asyncio.timeout_at(deadline if cancellable else None):
                response = await until_disconnected(
                    request, self.graphql.run(request, context=context), cancellable
                )
        except HTTPException as exc:  # Strawberry's own refusals, in our error shape
            return refusal(Refused(exc.status_code, exc.reason))
        except TimeoutError:
            stats = log_context.stats()
            stats.outcome, stats.reason = "refused", "deadline"
            return refusal(LATE)
        if media == GRAPHQL_RESPONSE:
            response = as_graphql_response(response, request)
        if (
            cache_key is not None
            and self.response_cache is not None
            and response.status_code == 200
            and context.cacheable
            and not getattr(request.state, "graphql_errors", False)
        ):
            stats = log_context.stats()
            stored = StoredResponse(bytes(response.body), stats.operation_name, stats.accounts)
            await self.response_cache.put(cache_key, stored, context.cache_until)
        if trusted and request.method == "GET":
            self._cacheable_by_http(request, response, context)
        return response

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
        response.headers["Vary"] = "Authorization, X-API-Key, Accept"

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
            service=self.service,
            transactions=self.transactions,
            topups=self.topups,
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

    async def _cache_key(
        self, payload: dict[str, Any], body: bytes, principal: Principal, known: str | None
    ) -> str | None:
        """The response-cache key of a cacheable request (`known`: already computed)."""
        if self.response_cache is None:
            return None
        cacheable = CachedRequest.from_payload(payload, body)
        if cacheable is None:
            return None
        return known or await self._key(self.response_cache, cacheable, principal)

    async def _key(self, cache: ResponseCache, request: CachedRequest, principal: Principal) -> str:
        """Who a response is stored for — what the caller may see, and how its documents
        are checked (a stored answer passed that check) — and what was asked."""
        identity = f"{principal.identity}|{self.documents.mode_for(principal)}"
        return await cache.key(request, identity, self._visible(principal))

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
                return None
            if not self.admission.try_enter("query"):
                return None  # no room: shed there (or, waiting, looked up again when in)
            self.admission.release("query")  # answered at once, as the whole way's slot is
            self._cache_hits.inc()
            return hit
