"""`/mcp`: the trusted documents as tools for AI agents — the Model Context Protocol over
Streamable HTTP, served by the official SDK's transport (`mcp`), behind the same gate as
`/graphql`.

Each request meets, in order: POST only (405 otherwise: stateless, there is no stream to
GET and no session to DELETE); an `Origin`, when a browser sends one, that is loopback or
one of `[server] cors_origins` (403 otherwise: the MCP specification's guard against DNS
rebinding, which a page of another site could otherwise use to reach a gateway on the
reader's machine); the credentials and the client's rate, exactly as on `/graphql`
(`GraphQLEndpoint.principal`: the same 401 and 429, as JSON-RPC errors); the body, read
as `/graphql` reads one — `application/json`, uncompressed, at most `[limits]
max_body_bytes`, whole within `body_timeout_seconds` (415, 413, 408) — and checked to be
JSON the SDK can read without failing (UTF-8, numbers a double holds, nested at most
`max_variables_depth` + 3 levels: a JSON-RPC parse error, 400); then the SDK's
transport, handed that body, reads the JSON-RPC message (a message it refuses counts as
`client_error`; its warning, with what the client sent, is not logged).

`tools/list` answers the tools whose every scope the caller holds (`mcp_tools.py`);
`tools/call` runs one — a tool the caller may not use is answered as one that does not
exist — as the `/graphql` endpoint runs a document: admitted as a query or a
mutation (`admission.py`: the same slots, the same 503), through the same schema and the
same per-request context (the caller's scopes and visible accounts), a query within the
request deadline and cancelled if its client leaves, a mutation run to its end (to nobody,
499 in the access line, if its client left meanwhile), errors masked as there. Only the
manifest's own text ever runs: a tool names a document, and the caller gives its
variables, nothing else. Its answer is the GraphQL `data` as the tool's structured
content (and as JSON text), which its output schema describes (`mcp_output.py`); with
GraphQL errors it is a tool error (`isError`) whose text is the whole answer,
`{"errors", "data"}`, and has no structured content.

Stateless, with JSON answers: every POST is a whole exchange, so any replica or worker
answers any request (no session to pin a client to a process, nothing kept between
requests), and nothing streams — a tool's answer is one JSON document, as a GraphQL
answer is. The SDK's session manager still runs for the app's life (its task group holds
each request's server), entered in the app's lifespan.

The access line names the tool's operation, as `/graphql`'s names it, and the request
metrics count it as `mcp:<tool>` (`request_metrics.py`): the SDK serves each request from a
task of its own, which runs the document in the request's context (its id, client, stats
and span) carried over to it.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import AsyncIterator, Awaitable, Coroutine
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

import orjson
from graphql import GraphQLSchema
from mcp import types
from mcp.server.lowlevel import Server
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from strawberry.types import ExecutionResult
from strawberry.types.graphql import OperationType

from gateway import __version__
from gateway._compat.mcp import on_call_tool, on_list_tools, quiet_root_records, serving_sdk
from gateway.access import Principal
from gateway.errors import ErrorCode, GatewayError
from gateway.observability import log_context
from gateway.server.admission import Kind
from gateway.server.endpoint import LATE, GraphQLEndpoint
from gateway.server.mcp_tools import Tool, tools_of
from gateway.server.outcomes import GONE, STATUS, classify, while_connected
from gateway.server.payload import body_refusal, nesting, read_capped
from gateway.server.refused import Refused

log = logging.getLogger("gateway.mcp")

PATH = "/mcp"
PRINCIPAL = "gateway.mcp.principal"  # scope keys: who asks, and the request's context
CARRIED = "gateway.mcp.context"
RETRY_AFTER = "gateway.mcp.retry_after"  # a shed tool call's, for its answer's header
SERVER_ERROR = -32000  # JSON-RPC's range for a server's own errors: a refusal's code
PARSE_ERROR = -32700  # JSON-RPC's: the body is not JSON it can read
LOOPBACK = frozenset({"localhost", "127.0.0.1", "::1"})
INSTRUCTIONS = (
    "Balance Gateway: the balances, levels, runway and transactions of the payment and "
    "credit accounts this key may see, and top-ups if it may make them. Amounts are exact "
    "decimal strings; never round them. A tool that moves money takes your own idempotency "
    "key: a new one for each distinct top-up, the same one to retry it."
)
POST_ONLY = Refused(
    405,
    "POST a JSON-RPC message: this MCP endpoint is stateless (no stream to GET, no session "
    "to DELETE).",
    headers={"Allow": "POST"},
)


class McpEndpoint:
    """The MCP server of the manifest's tools, and the ASGI app of `/mcp`."""

    def __init__(
        self, endpoint: GraphQLEndpoint, tools: list[Tool], origins: tuple[str, ...] = ()
    ) -> None:
        self.endpoint = endpoint
        self.origins = frozenset(origins)
        self.tools = {tool.name: tool for tool in tools}
        self.listed = {tool.name: listing(tool) for tool in tools}
        self.server: Server[Any, Any] = Server(
            "balance-gateway", version=__version__, instructions=INSTRUCTIONS
        )
        on_list_tools(self.server, self._list)
        on_call_tool(self.server, self._call)
        quiet_root_records()  # the SDK's warnings carry what clients sent
        self.manager = StreamableHTTPSessionManager(
            self.server,
            json_response=True,
            stateless=True,
            max_request_body_size=endpoint.limits.max_body_bytes,
        )

    @classmethod
    def of_manifest(
        cls,
        endpoint: GraphQLEndpoint,
        documents: dict[str, str],
        schema: GraphQLSchema,
        origins: tuple[str, ...] = (),
    ) -> McpEndpoint:
        """The manifest's tools (what is not one is logged, once, with why); `origins`:
        the browser origins besides loopback that may call it (`[server] cors_origins`)."""
        tools, left_out = tools_of(documents, schema)
        for reason in left_out:
            log.warning("MCP: not a tool: %s", reason)
        return cls(endpoint, tools, origins)

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """For the app's life (its lifespan): the SDK's task group for the requests — in
        a task of its own, which an anyio task group needs to be left in the task that
        entered it, whichever tasks start and end the lifespan."""
        stop = asyncio.Event()
        up = asyncio.get_running_loop().create_future()

        async def hold() -> None:
            async with self.manager.run():
                up.set_result(None)
                await stop.wait()

        held = asyncio.create_task(hold(), name="mcp-sessions")
        await asyncio.wait((up, held), return_when=asyncio.FIRST_COMPLETED)
        if held.done():
            held.result()  # it failed to start: say why
        try:
            yield
        finally:
            stop.set()
            await held

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        request = Request(scope, receive)
        stats = log_context.stats()
        try:
            if request.method != "POST":
                raise POST_ONLY
            if not origin_allowed(request.headers.get("origin"), self.origins):
                raise FOREIGN_ORIGIN
            principal = await self.endpoint.principal(request)
            body = await self._body(request)
        except GatewayError as exc:
            answer = jsonrpc_refusal(exc)
            classify(answer.status_code, stats)
            await answer(scope, receive, send)
            return
        scope[PRINCIPAL] = principal
        scope[CARRIED] = contextvars.copy_context()
        scope["headers"] = [  # `Application/JSON` is ours; the SDK compares exactly
            (name, b"application/json") if name == b"content-type" else (name, value)
            for name, value in scope["headers"]
        ]
        status = 0
        read = False

        async def replaying() -> Any:
            """The body already read, then the client's own messages (its leaving)."""
            nonlocal read
            if read:
                return await receive()
            read = True
            return {"type": "http.request", "body": body, "more_body": False}

        async def sending(message: Any) -> None:
            """The SDK's answer, `no-store` — or to nobody (the access line's 499) when
            the tool call found its client gone."""
            nonlocal status
            if stats.outcome == "cancelled":
                return
            if message["type"] == "http.response.start":
                status = message["status"]
                added = [(b"cache-control", b"no-store")]
                if RETRY_AFTER in scope:  # shed: when to ask again, as /graphql's 503 says
                    added.append((b"retry-after", str(scope[RETRY_AFTER]).encode()))
                message = {**message, "headers": [*message.get("headers", ()), *added]}
            elif (  # no tool ran (a tool's answer is its own): did the SDK refuse the message?
                status == 200
                and stats.outcome is None
                and stats.operation_type is None
                and is_jsonrpc_error(message)
            ):
                stats.outcome = "client_error"
            await send(message)

        with serving_sdk():
            await self.manager.handle_request(scope, replaying, sending)
        classify(200 if 200 <= status < 300 else status or 500, stats)  # 202: a notification

    async def _body(self, request: Request) -> bytes:
        """The body, read and checked as described above."""
        refused = body_refusal(request.headers)
        if refused is not None:
            raise refused
        limits = self.endpoint.limits
        body = await read_capped(request, limits.max_body_bytes, self.endpoint.body_timeout_seconds)
        try:
            message = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise NOT_JSON from None
        if isinstance(message, dict) and not isinstance(message.get("method"), str):
            raise NOT_A_REQUEST  # a response: the SDK would log it whole, as an error
        depth = limits.max_variables_depth + 3  # message, params, arguments
        if nesting(message) > depth:
            raise Unreadable(f"The message nests deeper than {depth} levels.")
        return body

    async def _list(self) -> list[types.Tool]:
        principal = self._principal()
        return [self.listed[t.name] for t in self.tools.values() if t.usable_by(principal.scopes)]

    def _request(self) -> Request:
        request = self.server.request_context.request
        assert isinstance(request, Request)  # the SDK's Streamable HTTP hands on ours
        return request

    def _principal(self) -> Principal:
        principal = self._request().scope[PRINCIPAL]
        assert isinstance(principal, Principal)
        return principal

    async def _call(self, name: str, arguments: dict[str, Any]) -> types.CallToolResult:
        """A tool called: run in the request's own context (its access line, its span).
        A tool the caller may not use is one that does not exist."""
        request = self._request()
        principal = self._principal()
        carried: contextvars.Context = request.scope[CARRIED]
        tool = self.tools.get(name)
        if tool is None or not tool.usable_by(principal.scopes):
            return carried.run(unknown_tool, name)
        run = asyncio.get_running_loop().create_task(
            self._in_flight(self._run(tool, arguments, request, principal)), context=carried
        )
        if tool.read_only:
            return await run  # cancelled with the request
        return await asyncio.shield(run)  # money moving runs to its end, as on /graphql

    async def _in_flight(
        self, call: Coroutine[Any, Any, types.CallToolResult]
    ) -> types.CallToolResult:
        """A tool call counted among the GraphQL requests being answered, to its end."""
        with self.endpoint.metrics.graphql_in_flight.track_inprogress():
            return await call

    async def _run(
        self, tool: Tool, arguments: dict[str, Any], request: Request, principal: Principal
    ) -> types.CallToolResult:
        log_context.note_operation(tool.kind, tool.name)  # the access line's, the metrics'
        stats = log_context.stats()
        unknown = sorted(set(arguments) - set(tool.input_schema["properties"]))
        if unknown:
            stats.outcome = "client_error"
            return tool_error(f"{tool.name} takes no {', '.join(unknown)}.", ErrorCode.VALIDATION)
        endpoint = self.endpoint
        kind: Kind = "query" if tool.read_only else "mutation"
        deadline = asyncio.get_running_loop().time() + endpoint.deadline_seconds
        try:
            release = await endpoint.admit(request, kind, endpoint.deadline_seconds)
        except GatewayError as exc:
            stats.outcome, stats.reason = "refused", "overloaded"
            request.scope[RETRY_AFTER] = exc.retry_after_seconds or 1
            return tool_error(exc.message, exc.code)
        if release is None:  # the client left while it waited: nobody reads this
            stats.outcome = "cancelled"
            return tool_error("The client left.", ErrorCode.OVERLOADED)
        try:
            context = endpoint.context_for(request, principal, tool.name)
            execution = endpoint.graphql.schema.execute(
                tool.document,
                variable_values=arguments,
                context_value=context,
                operation_name=tool.name,
                allowed_operation_types=(
                    OperationType.QUERY if tool.read_only else OperationType.MUTATION,
                ),
            )
            if not tool.read_only:
                return await self._to_its_end(execution, request)
            done: list[ExecutionResult] = []

            async def answered() -> None:
                done.append(await execution)

            try:
                async with asyncio.timeout_at(deadline):
                    if not await while_connected(request, answered()):
                        stats.outcome = "cancelled"
                        return tool_error("The client left.", ErrorCode.OVERLOADED)
            except TimeoutError:
                stats.outcome, stats.reason = "refused", "deadline"
                request.scope[RETRY_AFTER] = LATE.retry_after_seconds or 1
                return tool_error(LATE.message, LATE.code)
            return self._answer(done[0])
        finally:
            release()

    async def _to_its_end(
        self, execution: Awaitable[ExecutionResult], request: Request
    ) -> types.CallToolResult:
        """A mutation run to its end whether or not its client stays (its outcome
        journaled, as on `/graphql`) — and answered to nobody if it left meanwhile: the
        access line's 499 (`cancelled`), never a 200 no one read."""
        running = asyncio.ensure_future(execution)

        async def finished() -> None:
            await asyncio.shield(running)  # the client leaving cancels the wait, not the run

        connected = await while_connected(request, finished())
        result = await running
        if not connected:
            log_context.stats().outcome = "cancelled"
            return tool_error("The client left.", ErrorCode.OVERLOADED)
        return self._answer(result)

    def _answer(self, result: ExecutionResult) -> types.CallToolResult:
        """The GraphQL answer as a tool's: `data` structured (it is what the tool's output
        schema describes); with errors, masked as on `/graphql`, a tool error whose text
        is the whole answer, what `data` there is included — no structured content, which
        a client would hold to the output schema."""
        if not result.errors:
            text = orjson.dumps(result.data).decode()
            return types.CallToolResult(
                content=[types.TextContent(type="text", text=text)],
                structuredContent=result.data,
            )
        errors = [e.formatted for e in self.endpoint.graphql.mask(result.errors)]
        whole = {"errors": errors, "data": result.data}
        return types.CallToolResult(
            content=[types.TextContent(type="text", text=orjson.dumps(whole).decode())],
            isError=True,
        )


def listing(tool: Tool) -> types.Tool:
    """A tool as `tools/list` shows it: a query read-only; a mutation destructive, and not
    idempotent (only the same idempotency key makes a repeat harmless)."""
    if tool.read_only:
        hints = types.ToolAnnotations(title=tool.name, readOnlyHint=True, openWorldHint=False)
    else:
        hints = types.ToolAnnotations(
            title=tool.name,
            readOnlyHint=False,
            destructiveHint=True,
            idempotentHint=False,
            openWorldHint=True,
        )
    return types.Tool(
        name=tool.name,
        description=tool.description,
        inputSchema=tool.input_schema,
        outputSchema=tool.output_schema,
        annotations=hints,
        _meta={"balance-gateway/documentId": f"sha256:{tool.document_id}"},
    )


def unknown_tool(name: str) -> types.CallToolResult:
    log_context.stats().outcome = "client_error"
    return tool_error(f"Unknown tool: {name}", ErrorCode.NOT_FOUND)


def tool_error(message: str, code: ErrorCode) -> types.CallToolResult:
    """A tool's refusal, in the GraphQL error shape."""
    body = {"errors": [{"message": message, "extensions": {"code": code.value}}]}
    return types.CallToolResult(
        content=[types.TextContent(type="text", text=orjson.dumps(body).decode())],
        isError=True,
    )


FOREIGN_ORIGIN = Refused(
    403,
    "This page's origin may not call /mcp: an MCP client sends no Origin; a browser page's "
    "origin must be loopback or one of [server] cors_origins.",
    ErrorCode.FORBIDDEN,
)


class Unreadable(Refused):
    """A body that is no JSON-RPC message this endpoint reads: a JSON-RPC parse error."""

    def __init__(self, message: str) -> None:
        super().__init__(400, message)


NOT_JSON = Unreadable("The body is not JSON this endpoint reads: UTF-8, numbers a double holds.")
NOT_A_REQUEST = Unreadable(
    "Send one JSON-RPC request or notification (an object with a `method`): this endpoint "
    "is stateless and asks its clients nothing, so it takes no responses."
)


def origin_allowed(origin: str | None, allowed: frozenset[str]) -> bool:
    """No `Origin` (not a browser), a loopback one, or one the operator named."""
    if origin is None or origin in allowed:
        return True
    try:
        parts = urlsplit(origin)
        _ = parts.port  # a port that is not a number: no origin a browser sends
    except ValueError:
        return False
    return (
        parts.scheme in ("http", "https")
        and parts.hostname in LOOPBACK
        and "@" not in parts.netloc
        and parts.path in ("", "/")
    )


def is_jsonrpc_error(message: Any) -> bool:
    """Whether an answer's body is a JSON-RPC error (the SDK's, at HTTP 200)."""
    if message.get("type") != "http.response.body":
        return False
    try:
        answer = orjson.loads(message.get("body", b""))
    except orjson.JSONDecodeError:
        return False
    return isinstance(answer, dict) and "error" in answer


def jsonrpc_refusal(exc: GatewayError) -> Response:
    """A refusal before the SDK reads the request — its status and headers as on `/graphql`
    — as a JSON-RPC error (no id: the message was not read); to nobody when the client
    left while its body came (the access line's 499)."""
    status = exc.status if isinstance(exc, Refused) else STATUS.get(exc.code, 400)
    if status == GONE:
        return Response(status_code=GONE)
    headers = {"Cache-Control": "no-store"}
    if exc.retry_after_seconds:
        headers["Retry-After"] = str(exc.retry_after_seconds)
    if isinstance(exc, Refused):
        headers.update(exc.headers)
    rpc = PARSE_ERROR if isinstance(exc, Unreadable) else SERVER_ERROR
    error = {"code": rpc, "message": exc.message, "data": {"code": exc.code.value}}
    return JSONResponse({"jsonrpc": "2.0", "id": None, "error": error}, status, headers)


class McpRoute:
    """`/mcp`'s ASGI app: the endpoint the lifespan built (503 before it has)."""

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        found: McpEndpoint | None = getattr(scope["app"].state, "mcp", None)
        if found is None:
            starting = Refused(503, "Starting: retry shortly.", ErrorCode.OVERLOADED)
            classify(starting.status, log_context.stats())
            await jsonrpc_refusal(starting)(scope, receive, send)
            return
        await found(scope, receive, send)
