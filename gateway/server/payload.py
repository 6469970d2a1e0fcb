"""A request's payload before GraphQL sees it: its body read within its size and time caps,
its headers and its JSON checked (one object, no batches, variables not nested too deep),
and a GET's query parameters as the body they stand for. Each refusal is a `Refused` with
its HTTP status."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from typing import Any

from starlette.requests import ClientDisconnect, Request

from gateway import bodies
from gateway.config.security import RequestLimits
from gateway.observability import log_context
from gateway.server.outcomes import GONE
from gateway.server.refused import Refused


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
