"""Results as they arrive: an operation using `@defer` / `@stream`, answered in parts.

The first part is the initial result, with `pending` (what is still to come, each with an
`id` and a `path`) and `hasNext: true`. Each later part carries what became known since:
streamed list items (`incremental: [{"id", "items"}]`), deferred fragments (`incremental:
[{"id", "data"}]`), and what finished (`completed: [{"id"}]`, with `errors` when it
failed) — graphql-js 17's format, as graphql-core 3.3 produces it — until `hasNext: false`.
Every part's errors are masked and coded as a single answer's are (`GatewayGraphQL.mask`).

Two framings, chosen by `Accept` (`media.streaming`):

- `multipart/mixed; boundary="-"`: the body opens with `---`; each part follows as CRLF,
  `Content-Type: application/json; charset=utf-8` CRLF, `Content-Length: N` CRLF, CRLF,
  the JSON, CRLF, `---`; and `--` CRLF follows the last (the body ends `-----` CRLF).
  Apollo Client 4 (`GraphQL17Alpha9Handler`), urql and GraphiQL read it.
- `text/event-stream` (graphql-sse, distinct connections): `event: next` with the part as
  `data:`, then `event: complete`.

A client that asks with `multipart/mixed;deferSpec=20220824` gets the same parts in that
date's format (`Legacy`): no `pending`/`completed`; each deferred fragment as `{"data",
"path", "label"}` and each streamed batch as `{"items", "path": [...list, first index],
"label"}`, a failed one with `errors` and null `data`/`items` — what Apollo Client's
`Defer20220824Handler` and Relay read.

The request deadline bounds the whole answer: past it, the last part completes whatever is
still pending with an OVERLOADED error, so a client is never left waiting.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from typing import Any

import orjson
from graphql import (
    GraphQLError,
    InitialIncrementalExecutionResult,
    SubsequentIncrementalExecutionResult,
)
from starlette.requests import Request

from gateway.errors import Overloaded
from gateway.schema.context import Context
from gateway.server.media import LEGACY_MULTIPART, MULTIPART
from gateway.server.view import GatewayGraphQL

LATE = Overloaded("Not known within the request's deadline: retry shortly.", retry_after_seconds=1)
BOUNDARY = b"-"


def event(name: str, payload: Any = None) -> bytes:
    """One server-sent event (graphql-sse: `next` with a result, `complete`)."""
    data = b"" if payload is None else orjson.dumps(payload)
    return b"event: " + name.encode() + b"\ndata: " + data + b"\n\n"


class Framing:
    """How parts are written into one HTTP body."""

    def __init__(self, media: str) -> None:
        self.multipart = media in (MULTIPART, LEGACY_MULTIPART)
        self.media_type = media
        if self.multipart:
            spec = "; deferSpec=20220824" if media == LEGACY_MULTIPART else ""
            self.media_type = 'multipart/mixed; boundary="-"' + spec

    @property
    def opening(self) -> bytes:
        return b"--" + BOUNDARY if self.multipart else b""

    def part(self, payload: dict[str, Any]) -> bytes:
        if not self.multipart:
            return event("next", payload)
        body = orjson.dumps(payload)
        head = b"\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: %d\r\n\r\n"
        return head % len(body) + body + b"\r\n--" + BOUNDARY

    @property
    def closing(self) -> bytes:
        return b"--\r\n" if self.multipart else event("complete")


class Parts:
    """One operation's results as the JSON payloads a client receives, masked."""

    def __init__(
        self, view: GatewayGraphQL, request: Request, context: Context, legacy: bool = False
    ) -> None:
        self.view = view
        self.request = request
        self.context = context
        self.pending: dict[str, None] = {}  # ids announced and not yet completed, in order
        self.has_next = True
        self.started = False  # the first result is made
        self.legacy = Legacy() if legacy else None

    async def payload(self, result: Any) -> dict[str, Any]:
        if isinstance(result, SubsequentIncrementalExecutionResult):
            return self._subsequent(result)
        if self.context.errors:  # a resolver's deferred errors, which belong to the first
            result.errors = [*(result.errors or []), *self.context.errors]
            self.context.errors.clear()
        self.started = True
        payload: dict[str, Any] = dict(await self.view.process_result(self.request, result))
        if isinstance(result, InitialIncrementalExecutionResult):
            payload["pending"] = [p.formatted for p in result.pending]
            payload["hasNext"] = self.has_next = result.has_next
            self.pending.update((p.id, None) for p in result.pending)
        else:
            self.has_next = False
        return self.legacy.initial(payload) if self.legacy is not None else payload

    def _subsequent(self, result: SubsequentIncrementalExecutionResult) -> dict[str, Any]:
        for part in (*(result.incremental or ()), *(result.completed or ())):
            if part.errors:
                part.errors = self.view.mask(part.errors)
        self.pending.update((p.id, None) for p in result.pending or ())
        for done in result.completed or ():
            self.pending.pop(done.id, None)
        self.has_next = result.has_next
        formatted = dict(result.formatted)
        return self.legacy.subsequent(formatted) if self.legacy is not None else formatted

    def late(self) -> dict[str, Any]:
        """The last part when the deadline passes: everything pending failed — or, before
        the first result, the error alone, as `/graphql` answers a query past it."""
        (error,) = self.view.mask([GraphQLError(LATE.message, original_error=LATE)])
        self.has_next = False
        if not self.started:
            return {"errors": [error.formatted]}
        payload = {
            "hasNext": False,
            "completed": [{"id": i, "errors": [error.formatted]} for i in self.pending],
        }
        return self.legacy.subsequent(payload) if self.legacy is not None else payload


class Legacy:
    """graphql-js 17's parts rewritten in the format of `deferSpec=20220824`: ids become
    paths (from the `pending` that announced them), a streamed batch's path ends at the
    index of its first item (counted on the data sent so far), and a fragment or stream
    that failed is an entry with `errors` and null `data` or `items`."""

    def __init__(self) -> None:
        self.announced: dict[str, tuple[list[Any], str | None]] = {}  # id: (path, label)
        self.data: Any = None  # the answer so far: the lists' lengths are read here

    def initial(self, payload: dict[str, Any]) -> dict[str, Any]:
        self._announce(payload.pop("pending", ()))
        self.data = payload.get("data")
        return payload

    def subsequent(self, payload: dict[str, Any]) -> dict[str, Any]:
        self._announce(payload.pop("pending", ()))
        entries = [self._entry(part) for part in payload.pop("incremental", ())]
        for done in payload.pop("completed", ()):
            if done.get("errors"):
                path, label = self.announced[done["id"]]
                key = "items" if isinstance(self._at(path), list) else "data"
                entry: dict[str, Any] = {key: None, "path": path, "errors": done["errors"]}
                entries.append(entry | ({"label": label} if label else {}))
        return {"hasNext": payload["hasNext"], **({"incremental": entries} if entries else {})}

    def _announce(self, pending: Any) -> None:
        for p in pending:
            self.announced[p["id"]] = (list(p["path"]), p.get("label"))

    def _entry(self, part: dict[str, Any]) -> dict[str, Any]:
        path, label = self.announced[part["id"]]
        entry: dict[str, Any]
        if "items" in part:
            items = self._at(path)
            index = len(items) if isinstance(items, list) else 0
            if isinstance(items, list):
                items.extend(part["items"])
            entry = {"items": part["items"], "path": [*path, index]}
        else:
            path = [*path, *part.get("subPath", ())]
            target = self._at(path)
            if isinstance(target, dict) and isinstance(part["data"], dict):
                target.update(part["data"])
            entry = {"data": part["data"], "path": path}
        if label:
            entry["label"] = label
        if part.get("errors"):
            entry["errors"] = part["errors"]
        return entry

    def _at(self, path: list[Any]) -> Any:
        node = self.data
        for key in path:
            try:
                node = node[key]
            except (KeyError, IndexError, TypeError):
                return None
        return node


async def body(
    parts: Parts,
    first: Any,
    rest: AsyncGenerator[Any, None],
    framing: Framing,
    deadline: float,
    ended: Callable[[bool], None],
) -> AsyncIterator[bytes]:
    """The framed parts, the first already known; `ended(True)` once the last is sent,
    `ended(False)` if the client left first. The results are closed either way."""
    finished = False
    try:
        yield framing.opening + framing.part(await parts.payload(first))
        while parts.has_next:
            try:
                async with asyncio.timeout_at(deadline):
                    result = await anext(rest)
            except TimeoutError:
                yield framing.part(parts.late())
                break
            except StopAsyncIteration:
                break
            yield framing.part(await parts.payload(result))
        yield framing.closing
        finished = True
    finally:
        await rest.aclose()
        ended(finished)
