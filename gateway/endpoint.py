"""`POST /graphql`: the response cache in front, Strawberry behind it.

Per request: a fresh `Context` (service, DataLoader, deferred errors, what the answer may
be cached for); a response-cache lookup before any parsing when the request is a cacheable
query; execution; then the answer is stored if it is complete, error-free and fresh.
"""

from __future__ import annotations

from cross_web import HTTPException  # what Strawberry's views raise (its own dependency)
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from strawberry.asgi import GraphQL
from strawberry.http import GraphQLHTTPResponse
from strawberry.types import ExecutionResult

from gateway.clock import Clock
from gateway.metrics import Metrics
from gateway.response_cache import CachedRequest, ResponseCache
from gateway.schema.context import Context
from gateway.schema.errors import coded
from gateway.service import BalanceService


class GatewayGraphQL(GraphQL[Context, None]):
    async def process_result(
        self, request: Request, result: ExecutionResult
    ) -> GraphQLHTTPResponse:
        if result.errors:
            request.state.graphql_errors = True
            result.errors = [coded(error) for error in result.errors]
        return await super().process_result(request, result)


class GraphQLEndpoint:
    def __init__(
        self,
        graphql: GatewayGraphQL,
        service: BalanceService,
        response_cache: ResponseCache | None,
        metrics: Metrics,
        clock: Clock,
        default_fresh_seconds: float,
    ) -> None:
        self.graphql = graphql
        self.service = service
        self.response_cache = response_cache
        self.metrics = metrics
        self.clock = clock
        self.default_fresh_seconds = default_fresh_seconds

    async def __call__(self, request: Request) -> Response:
        with self.metrics.graphql_in_flight.track_inprogress():
            cache_key = await self._cache_key(request)
            if cache_key is not None and self.response_cache is not None:
                hit = await self.response_cache.get(cache_key)
                self.metrics.response_cache_events.labels("hit" if hit else "miss").inc()
                if hit is not None:
                    return Response(hit, media_type="application/json")
            context = Context(
                request=request,
                service=self.service,
                cache_until=self.clock() + self.default_fresh_seconds,
            )
            try:
                response = await self.graphql.run(request, context=context)
            except HTTPException as exc:
                return PlainTextResponse(exc.reason, status_code=exc.status_code)
            if (
                cache_key is not None
                and self.response_cache is not None
                and response.status_code == 200
                and context.cacheable
                and not getattr(request.state, "graphql_errors", False)
            ):
                await self.response_cache.put(cache_key, bytes(response.body), context.cache_until)
            return response

    async def _cache_key(self, request: Request) -> str | None:
        if self.response_cache is None or request.method != "POST":
            return None
        if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
            return None
        cacheable = CachedRequest.of(await request.body())
        if cacheable is None:
            return None
        accounts = [a.id for a in self.service.accounts()]
        return await self.response_cache.key(cacheable, caller="anonymous", accounts=accounts)
