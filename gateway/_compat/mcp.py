"""The MCP SDK's internals the MCP endpoint touches (`gateway/server/mcp.py`).

`on_list_tools()`, `on_call_tool()`: the handlers of `tools/list` and `tools/call` are put
in the low-level server's own map of handlers, `Server.request_handlers`, rather than
registered with its decorators, `Server.list_tools()` (untyped) and `Server.call_tool()`.
The latter looks the tool up in a cache the server keeps across callers (filled by
whoever listed the tools last) and checks the arguments against it before the handler
runs, so a caller could tell from the answer that a tool it may not use exists. Ours
answers a tool the key may not use exactly as one that does not exist, and checks the
arguments itself once it knows the tool is the caller's.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
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
