"""The MCP SDK's internals the MCP endpoint touches (`gateway/server/mcp.py`).

`on_list_tools()`, `on_call_tool()`: the handlers of `tools/list` and `tools/call` are put
in the low-level server's own map of handlers, `Server.request_handlers`, rather than
registered with its decorators, `Server.list_tools()` (untyped) and `Server.call_tool()`.
The latter looks the tool up in a cache the server keeps across callers (filled by
whoever listed the tools last) and checks the arguments against it before the handler
runs, so a caller could tell from the answer that a tool it may not use exists. Ours
answers a tool the key may not use exactly as one that does not exist, and checks the
arguments itself once it knows the tool is the caller's.

`quiet_root_records()`, `serving_sdk()`: the SDK logs a message it cannot validate
through the *root* logger (`logging.warning(f"Failed to validate request: {e}")` in
`mcp.shared.session`), not its own `mcp` loggers: pydantic's whole error text, with what
the client sent in it — thousands of bytes for one request, an idempotency key repeated
in it. A filter on the root logger drops root records below ERROR made while the SDK
serves a request (a context variable its tasks inherit from the request's; the gateway
keeps no source file per record, so the caller's module cannot say whose they are). The
client's mistake is answered as a JSON-RPC error and counted in the access line; the
SDK's errors still show.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from mcp import types
from mcp.server.lowlevel import Server

ToolCall = Callable[[str, dict[str, Any]], Awaitable[types.CallToolResult]]
ToolList = Callable[[], Awaitable[list[types.Tool]]]


def on_list_tools(server: Server[Any, Any], handler: ToolList) -> None:
    async def handle(request: types.ListToolsRequest) -> types.ServerResult:
        return types.ServerResult(types.ListToolsResult(tools=await handler()))

    server.request_handlers[types.ListToolsRequest] = handle


def on_call_tool(server: Server[Any, Any], handler: ToolCall) -> None:
    async def handle(request: types.CallToolRequest) -> types.ServerResult:
        return types.ServerResult(
            await handler(request.params.name, request.params.arguments or {})
        )

    server.request_handlers[types.CallToolRequest] = handle


SERVING_SDK: ContextVar[bool] = ContextVar("serving_mcp_sdk", default=False)


class SdkRootRecords(logging.Filter):
    """Drops what is logged below ERROR through the root logger while the SDK serves."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.ERROR or not SERVING_SDK.get()


def quiet_root_records() -> None:
    root = logging.getLogger()
    if not any(isinstance(f, SdkRootRecords) for f in root.filters):
        root.addFilter(SdkRootRecords())


@contextmanager
def serving_sdk() -> Iterator[None]:
    """While the SDK serves a request (and in the tasks it starts for it)."""
    token = SERVING_SDK.set(True)
    try:
        yield
    finally:
        SERVING_SDK.reset(token)
