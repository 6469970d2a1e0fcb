"""Every touch of a library's internals (`gateway/_compat/`) still holds: each test names
the hook and fails loudly when a release moves it — before the behaviour that depends on
it breaks somewhere less obvious."""

from __future__ import annotations

import asyncio
import inspect
import logging
import traceback
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import strawberry
from graphql import FieldNode, GraphQLResolveInfo, GraphQLSchema
from graphql.execution import Executor as ExecutionContext  # graphql-core 3.3 calls it Executor
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway._compat import aiocache as aiocache_compat
from gateway._compat import graphql as graphql_compat
from gateway._compat import mcp as mcp_compat
from gateway._compat import starlette as starlette_compat
from gateway._compat import strawberry as strawberry_compat
from gateway._compat import uvicorn as uvicorn_compat
from gateway.cache.store import open_store


@strawberry.type
class Query:
    hello: str = "world"


def test_strawberry_execution_context_is_still_what_graphql_core_is_handed() -> None:
    base = strawberry_compat.ExecutionContextBase
    assert issubclass(base, ExecutionContext), "Strawberry's execution context moved"
    schema = strawberry.Schema(query=Query, execution_context_class=base)
    assert schema.execute_sync("{ hello }", root_value=Query()).data == {"hello": "world"}


def test_strawberry_schema_still_holds_its_graphql_core_schema_and_validates() -> None:
    schema = strawberry.Schema(query=Query)
    core = strawberry_compat.core_schema(schema)
    assert isinstance(core, GraphQLSchema), "Strawberry's `_schema` moved"
    from graphql import parse, specified_rules

    rules = tuple(specified_rules)
    assert strawberry_compat.validate_document(core, parse("{ hello }"), rules) == []
    assert strawberry_compat.validate_document(core, parse("{ nope }"), rules)


def test_strawberry_info_still_wraps_graphql_cores_resolve_info() -> None:
    seen: list[GraphQLResolveInfo[Any]] = []

    @strawberry.type
    class Probe:
        @strawberry.field
        def hello(self, info: strawberry.Info) -> str:
            seen.append(strawberry_compat.resolve_info(info))
            return "world"

    strawberry.Schema(query=Probe).execute_sync("{ hello }", root_value=Probe())
    (raw,) = seen
    # What `schema.types.streamed` reads of it.
    assert raw.field_nodes[0].name.value == "hello", "Strawberry's `Info._raw_info` moved"
    assert isinstance(raw.field_nodes[0], FieldNode)


@pytest.mark.parametrize("hook", sorted(graphql_compat.HOOKS))
def test_graphql_core_executor_still_has_the_overridden_methods(hook: str) -> None:
    method = getattr(ExecutionContext, hook, None)
    assert method is not None, f"graphql-core's ExecutionContext.{hook} is gone"
    parameters = list(inspect.signature(method).parameters)[1:]
    assert parameters[: len(graphql_compat.HOOKS[hook])] == list(graphql_compat.HOOKS[hook]), (
        f"graphql-core's ExecutionContext.{hook} changed its parameters: {parameters}"
    )


def test_graphql_core_executor_still_binds_the_async_helpers_we_replace() -> None:
    from graphql import GraphQLResolveInfoHelpers, parse

    core = strawberry_compat.core_schema(strawberry.Schema(query=Query))
    executor = ExecutionContext.build(core, parse("{ hello }"))
    assert isinstance(executor, ExecutionContext), executor  # not a list of errors
    helpers = executor.async_helpers
    assert isinstance(helpers, GraphQLResolveInfoHelpers), "Executor.async_helpers moved"
    assert GraphQLResolveInfoHelpers._fields == ("gather", "track")
    # What `helpers_holding_weakly` stands in for: the executor's own, bound to itself.
    assert getattr(helpers.track, "__self__", None) is executor
    assert getattr(helpers.track, "__func__", None) is ExecutionContext.track_async_work
    assert getattr(helpers.gather, "__func__", None) is ExecutionContext.gather_async_work
    source = inspect.getsource(ExecutionContext.gather_async_work)
    assert "return gather_with_cancel(*values)" in source, "gather_async_work changed"


def test_graphql_core_event_executors_still_share_the_memo_we_give_each_its_own() -> None:
    """`forget_field_groups` replaces two attributes graphql-core sets in `Executor.__init__`
    and a subscription event's executor shares by being a shallow copy. If a release stops
    sharing them (the leak fixed upstream), this fails: drop the override then."""
    from graphql import ExecutionResult, parse
    from graphql.pyutils import RefMap

    core = strawberry_compat.core_schema(strawberry.Schema(query=Query))
    executor = ExecutionContext.build(core, parse("{ hello }"))
    assert isinstance(executor, ExecutionContext), executor
    event = executor.build_per_event_executor(Query())
    assert isinstance(executor._relevant_sub_fields, dict), "the subfield memo moved"
    assert isinstance(executor._stream_usages, RefMap), "the stream-usage memo moved"
    assert event._relevant_sub_fields is executor._relevant_sub_fields, "no longer shared"
    assert event._stream_usages is executor._stream_usages, "no longer shared"
    graphql_compat.forget_field_groups(event)
    assert event._relevant_sub_fields == {} and len(event._stream_usages) == 0
    assert event._relevant_sub_fields is not executor._relevant_sub_fields
    answer = event.execute_operation(False)
    assert isinstance(answer, ExecutionResult) and answer.data == {"hello": "world"}


def test_graphql_core_still_gathers_fields_and_items_through_its_module_global() -> None:
    """`settle_siblings` replaces `graphql.execution.executor.gather_with_cancel`: that
    works while the executor calls it by that module-level name, where it gathers an
    object's fields and a list's items."""
    from graphql.execution import executor as module

    source = inspect.getsource(module)
    assert "from ..pyutils import" in source and "gather_with_cancel" in source
    assert source.count("await gather_with_cancel(") >= 3, "the executor gathers otherwise now"
    graphql_compat.settle_siblings()
    assert module.gather_with_cancel is graphql_compat._settling_gather  # type: ignore[attr-defined]


async def test_a_failed_sibling_leaves_the_others_to_finish() -> None:
    finished: list[int] = []

    async def fails() -> None:
        raise ValueError("a sibling's error")

    async def works(n: int) -> int:
        await asyncio.sleep(0)
        finished.append(n)
        return n

    with pytest.raises(ValueError, match="sibling"):
        await graphql_compat._settling_gather(fails(), works(1), works(2))
    assert sorted(finished) == [1, 2]


async def test_starlette_request_still_reads_its_body_from_the_cache_set_body_fills() -> None:
    async def endpoint(request: Request) -> Response:
        starlette_compat.set_body(request, b"from the cache")
        return Response(await request.body())

    app = Starlette(routes=[Route("/", endpoint, methods=["POST"])])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        response = await c.post("/", content=b"from the stream")
    assert response.content == b"from the cache", "Starlette's Request._body moved"


async def test_starlette_request_reads_the_query_string_set_query_puts_in_place() -> None:
    async def endpoint(request: Request) -> Response:
        assert request.query_params["query"] == "sent"  # parsed, and cached, once
        starlette_compat.set_query(request, {"query": "{ replaced }", "x": "1"})
        return Response(f"{request.query_params['query']}|{request.url.query}")

    app = Starlette(routes=[Route("/", endpoint, methods=["GET"])])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        response = await c.get("/", params={"query": "sent"})
    assert response.text == "{ replaced }|query=%7B+replaced+%7D&x=1", (
        "Starlette's Request._query_params (or its scope's query_string) moved"
    )


async def test_aiocache_redis_backend_still_has_a_client_and_namespaced_keys(
    redis_url: str, namespace: str
) -> None:
    store = open_store(redis_url, namespace)
    try:
        result = await aiocache_compat.eval_script(
            store._backend, "return {KEYS[1], ARGV[1]}", "k", "v"
        )
    finally:
        await store.close()
    assert [bytes(x).decode() if isinstance(x, bytes) else x for x in result] == [
        f"{namespace}:k",
        "v",
    ], "aiocache's RedisCache.client or build_key moved"


async def test_aiocache_redis_backend_still_publishes_and_subscribes_on_namespaced_channels(
    redis_url: str, namespace: str
) -> None:
    store = open_store(redis_url, namespace)
    try:
        subscription, channel = aiocache_compat.pubsub(store._backend, "c")
        await subscription.subscribe(channel)
        await subscription.get_message(timeout=None)  # the confirmation
        listening = await aiocache_compat.publish(store._backend, "c", "hello")
        async with asyncio.timeout(10):  # a bound on Redis, not a timing test
            message = await subscription.get_message(ignore_subscribe_messages=True, timeout=None)
        await subscription.aclose()
    finally:
        await store.close()
    assert channel == f"{namespace}:c", "aiocache's RedisCache.build_key moved"
    assert (listening, message["channel"], message["data"]) == (
        1,
        channel.encode(),
        b"hello",
    ), "aiocache's RedisCache.client no longer has redis-py's pub/sub"


async def test_aiocache_memory_backend_still_keeps_its_values_in_a_namespaced_dict() -> None:
    store = open_store("memory://", "ns-")
    await store.set("k", "v", 60)
    await store.set("n", "1", 60)
    read = aiocache_compat.memory_reader(store._backend)
    assert read(["k", "n", "absent"]) == await store._backend.multi_get(["k", "n", "absent"]), (
        "aiocache's SimpleMemoryCache._cache or build_key moved"
    )
    assert read(["k"]) == ["v"]
    assert await store.get("k") == "v" and await store.multi_get(["n", "x"]) == ["1", None]


def test_uvicorn_httptools_protocol_still_has_the_methods_the_guard_extends() -> None:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    for name in (
        "connection_made",
        "data_received",
        "on_headers_complete",
        "on_response_complete",
        "connection_lost",
    ):
        assert callable(getattr(HttpToolsProtocol, name, None)), f"uvicorn moved {name}"
    guarded = uvicorn_compat.guarded_protocol(1024, 1.0)
    assert issubclass(guarded, HttpToolsProtocol)
    # Behaviour over real sockets: tests/test_http_limits.py.


def test_uvicorn_cycles_still_write_through_their_own_transport_attribute() -> None:
    """The guard hands each request's cycle a coalescing transport (`cycle.transport`)."""
    import inspect

    from uvicorn.protocols.http.httptools_impl import RequestResponseCycle

    assert "transport" in inspect.signature(RequestResponseCycle.__init__).parameters
    assert "self.transport.write(" in inspect.getsource(RequestResponseCycle.send), (
        "uvicorn's RequestResponseCycle no longer writes through self.transport"
    )


class Recording:
    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def get_extra_info(self, name: str) -> str:
        return f"extra {name}"


async def test_a_response_head_leaves_with_its_body_or_at_the_end_of_the_turn() -> None:
    loop = asyncio.get_running_loop()
    real = Recording()
    together = uvicorn_compat.Coalescing(real, loop)  # type: ignore[arg-type]
    together.write(b"head;")
    together.write(b"body")
    assert real.writes == [b"head;body"]  # one write, one packet

    real = Recording()
    apart = uvicorn_compat.Coalescing(real, loop)  # type: ignore[arg-type]
    apart.write(b"head;")
    assert real.writes == []
    await asyncio.sleep(0)  # the turn ends: the head leaves on its own
    assert real.writes == [b"head;"]
    apart.write(b"part 1")
    assert real.writes == [b"head;", b"part 1"]

    real = Recording()
    closing = uvicorn_compat.Coalescing(real, loop)  # type: ignore[arg-type]
    closing.write(b"head;")
    closing.close()
    assert real.writes == [b"head;"] and real.closed  # never lost to a close
    assert closing.get_extra_info("peername") == "extra peername"

    real = Recording()
    large = uvicorn_compat.Coalescing(real, loop)  # type: ignore[arg-type]
    large.write(b"head;")
    body = b"x" * (uvicorn_compat.COALESCE_BYTES + 1)
    large.write(body)
    assert real.writes == [b"head;", body]  # a large body is not copied behind the head

    real = Recording()
    headless = uvicorn_compat.Coalescing(real, loop)  # type: ignore[arg-type]
    headless.write(b"head;")
    headless.release()  # the response is complete (HEAD: no body write)
    assert real.writes == [b"head;"]


def test_uvicorn_server_still_wraps_its_serving_in_capture_signals() -> None:
    """`SignalsLeftAlone` empties `capture_signals`: uvicorn must still call it from
    `serve` (were it renamed, its handlers would be back, and a clean Ctrl-C would end in
    a re-raised signal), and ours must install no handler."""
    import signal

    import uvicorn

    assert "with self.capture_signals()" in inspect.getsource(uvicorn.Server.serve)
    assert inspect.getsource(uvicorn.Server.capture_signals).count("signal.signal(") >= 1
    server = uvicorn_compat.SignalsLeftAlone(uvicorn.Config(app="gateway.app:create_app"))
    before = signal.getsignal(signal.SIGTERM)
    with server.capture_signals():
        assert signal.getsignal(signal.SIGTERM) is before


async def test_uvicorn_still_ticks_with_its_open_connections() -> None:
    """`SignalsLeftAlone.on_tick` reports `len(server_state.connections)` (what
    `server/memory_release.py` follows): uvicorn's main loop must still call `on_tick`,
    and its state still keep the connections in a set."""
    import uvicorn

    seen: list[int] = []

    class Ticking(uvicorn_compat.SignalsLeftAlone):
        def ticked(self, connections: int) -> None:
            seen.append(connections)

    assert "await self.on_tick(counter)" in inspect.getsource(uvicorn.Server.main_loop)
    server = Ticking(uvicorn.Config(app="gateway.app:create_app"))
    assert isinstance(server.server_state.connections, set)
    server.server_state.connections.update({object(), object()})  # type: ignore[arg-type]
    assert await server.on_tick(10) is False  # uvicorn's own tick ran: not exiting
    assert seen == [2]


def test_glibc_still_gives_its_free_memory_back() -> None:
    """`_compat/libc.py` finds `malloc_trim` in the running process on glibc (where this
    runs), and it gives back memory freed in the middle of the heap (which glibc keeps
    otherwise): 32 MiB of blocks freed, one kept after them."""
    import platform

    from gateway._compat import libc
    from tests.helpers import rss_mib

    assert platform.libc_ver()[0] == "glibc", "the gateway's images and CI run on glibc"
    assert libc.MALLOC_TRIM is not None
    blocks = [bytes(64 * 1024) for _ in range(512)]  # each under glibc's mmap threshold
    kept = blocks[-1]
    del blocks
    held = rss_mib()
    assert libc.release_free_memory() is True
    assert rss_mib() < held - 16
    assert len(kept) == 64 * 1024


async def test_httpx_aiohttp_still_chains_aiohttps_error_to_the_one_it_raises() -> None:
    """A refused connection comes out of httpx-aiohttp as an httpx error whose cause is
    aiohttp's: what `upstream/client.transport_error` classifies by."""
    import socket

    import aiohttp
    from httpx_aiohttp import AiohttpTransport

    from gateway._compat import httpx_aiohttp as httpx_aiohttp_compat

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    async with httpx.AsyncClient(transport=AiohttpTransport()) as client:
        with pytest.raises(httpx.TransportError) as raised:
            await client.get(f"http://127.0.0.1:{port}/")
    cause = httpx_aiohttp_compat.aiohttp_cause(raised.value)
    assert isinstance(cause, aiohttp.ClientConnectorError), (type(raised.value), cause)


def test_strawberry_still_marks_a_plain_fields_resolver_as_its_default() -> None:
    @strawberry.type
    class Plain:
        name: str = "x"

        @strawberry.field
        def computed(self) -> str:
            return "y"

    fields = strawberry_compat.core_schema(strawberry.Schema(query=Plain)).query_type.fields  # type: ignore[union-attr]
    assert strawberry_compat.is_default_resolver(fields["name"].resolve), "`_is_default` moved"
    assert not strawberry_compat.is_default_resolver(fields["computed"].resolve)


async def test_the_mcp_low_level_server_still_dispatches_tools_through_its_handler_map() -> None:
    """`Server.request_handlers` still routes `tools/list` and `tools/call` to what
    `_compat/mcp.py` puts there — and the server still advertises tools because of it —
    with the tool's name and arguments as a client sent them."""
    from mcp import types
    from mcp.server.lowlevel import Server
    from mcp.shared.memory import create_connected_server_and_client_session

    server: Server[Any, Any] = Server("probe")
    called: list[tuple[str, dict[str, Any]]] = []
    probe = types.Tool(name="Probe", inputSchema={"type": "object"})

    async def listed() -> list[types.Tool]:
        return [probe]

    async def call(name: str, arguments: dict[str, Any]) -> types.CallToolResult:
        called.append((name, arguments))
        return types.CallToolResult(content=[], structuredContent={"ok": True})

    mcp_compat.on_list_tools(server, listed)
    mcp_compat.on_call_tool(server, call)
    async with create_connected_server_and_client_session(server) as session:
        assert session.get_server_capabilities().tools is not None  # type: ignore[union-attr]
        assert [t.name for t in (await session.list_tools()).tools] == ["Probe"]
        result = await session.call_tool("Probe", {"x": 1})
        nameless = await session.call_tool("Nobody", None)
    assert result.structuredContent == {"ok": True} and not result.isError
    assert nameless.structuredContent == {"ok": True}  # no cache consulted on the way
    assert called == [("Probe", {"x": 1}), ("Nobody", {})]


def test_the_mcp_sdk_still_logs_a_message_it_cannot_validate_through_the_root_logger() -> None:
    """`_compat/mcp.quiet_root_records()` drops root records made while the SDK serves: the
    SDK must still log that warning (with the client's input) through the root logger. If
    it moves to a logger of its own, the filter no longer applies — and the warning, at
    WARNING, would pass the `mcp` loggers' level: this fails first."""
    import inspect

    from mcp.shared import session

    assert 'logging.warning(f"Failed to validate request: {e}")' in inspect.getsource(session)
    kept: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            kept.append(record.getMessage())

    root, handler = logging.getLogger(), Keep()
    mcp_compat.quiet_root_records()
    root.addHandler(handler)
    try:
        with mcp_compat.serving_sdk():
            logging.warning("the client's input")
            logging.error("the SDK's own failure")
        logging.warning("anyone else's")
    finally:
        root.removeHandler(handler)
    assert kept == ["the SDK's own failure", "anyone else's"]


async def test_asyncio_still_lets_a_task_step_be_entered_and_left_from_outside() -> None:
    """`_compat/asyncio.started` takes a task's first step in the caller's turn, entering
    the new task as the current one with `asyncio.tasks._enter_task` / `_leave_task` (what
    a task calls around each step). Fails loudly if they move or stop checking."""
    import asyncio.tasks

    loop = asyncio.get_running_loop()
    me = asyncio.current_task()
    assert me is not None
    with pytest.raises(RuntimeError):  # still refuses a second current task
        asyncio.tasks._enter_task(loop, me)
    other = loop.create_task(asyncio.sleep(0))
    asyncio.tasks._leave_task(loop, me)
    asyncio.tasks._enter_task(loop, other)
    seen = asyncio.current_task()
    asyncio.tasks._leave_task(loop, other)
    asyncio.tasks._enter_task(loop, me)
    assert seen is other and asyncio.current_task() is me
    await other


@pytest.fixture
def eager() -> Iterator[None]:
    """First steps taken at once (as the endpoint has them for a request others may join),
    from a turn whose budget is never spent."""
    from gateway._compat.asyncio import Turn, first_steps

    with first_steps(Turn(clock=lambda: 0.0)):
        yield


async def test_a_started_task_has_taken_its_first_step_as_itself_in_its_own_context(
    eager: None,
) -> None:
    import contextvars

    from gateway._compat.asyncio import started

    var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="caller's")
    steps: list[tuple[str, asyncio.Task[Any] | None]] = []
    go = asyncio.get_running_loop().create_future()

    async def work() -> str:
        var.set("the task's")
        steps.append(("first", asyncio.current_task()))
        await go
        steps.append(("second", asyncio.current_task()))
        return var.get()

    me = asyncio.current_task()
    task = started(work())
    assert steps == [("first", task)]  # taken before the caller went on, as the task
    assert asyncio.current_task() is me and var.get() == "caller's"
    go.set_result(None)
    assert await task == "the task's"
    assert steps == [("first", task), ("second", task)]


async def test_a_started_task_ends_as_its_coroutine_does_and_its_timeout_is_its_own(
    eager: None,
) -> None:
    from gateway._compat.asyncio import started

    async def done() -> int:
        return 7

    async def fails() -> None:
        raise ValueError("first step")

    async def slow() -> None:
        async with asyncio.timeout(0.01):  # entered in the first step: names the task
            await asyncio.sleep(10)

    assert await started(done()) == 7
    with pytest.raises(ValueError, match="first step") as kept:
        await started(fails())
    assert "raise ValueError" in "".join(traceback.format_tb(kept.value.__traceback__))
    with pytest.raises(ValueError, match="first step") as bare:
        await started(fails(), traceless=(ValueError,))  # a refusal's: no frames kept
    assert "raise ValueError" not in "".join(traceback.format_tb(bare.value.__traceback__))
    with pytest.raises(TimeoutError):
        await started(slow())  # the task timed out; the caller (this test) was not cancelled


async def test_a_started_task_cancelled_before_its_turn_cancels_what_it_waits_on(
    eager: None,
) -> None:
    from gateway._compat.asyncio import started

    inner = asyncio.ensure_future(asyncio.sleep(10))
    unwound: list[str] = []

    async def waits() -> None:
        try:
            await inner
        finally:
            unwound.append("finally")

    task = started(waits())
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert task.cancelled() and inner.cancelled() and unwound == ["finally"]


async def test_a_future_a_started_task_waits_on_can_be_awaited_by_others_too(eager: None) -> None:
    """Until its task's first turn, what the first step waits on must not look awaited
    already (`_asyncio_future_blocking`): another task awaiting it would fail."""
    from gateway._compat.asyncio import started

    shared = asyncio.ensure_future(asyncio.sleep(0.001, "v"))
    plain = asyncio.get_running_loop().create_future()

    async def read(future: asyncio.Future[str]) -> str:
        return await future

    ordinary = asyncio.ensure_future(read(plain))  # queued before the started ones
    tasks = [started(read(shared)), started(read(shared)), started(read(plain))]
    plain.set_result("p")
    assert await asyncio.gather(ordinary, *tasks) == ["p", "v", "v", "p"]


async def test_a_started_task_cancelled_keeps_the_message_and_ends_cancelled(eager: None) -> None:
    from gateway._compat.asyncio import started

    waited = asyncio.get_running_loop().create_future()

    async def waits() -> None:
        await waited

    async def returns() -> int:
        return 5

    task = started(waits())
    task.cancel("bye")
    with pytest.raises(asyncio.CancelledError, match="bye"):
        await task
    ended = started(returns())
    assert ended.cancel()  # asked before its first turn: it ends cancelled, as a task would
    with pytest.raises(asyncio.CancelledError):
        await ended
    assert ended.cancelled()


async def test_a_started_task_is_named_by_its_coroutine(eager: None) -> None:
    from gateway._compat.asyncio import started

    async def named_work() -> None:
        await asyncio.sleep(0)

    task = started(named_work())
    assert "named_work" in repr(task) and task.get_stack()  # the coroutine, not the wrapper
    await task


async def test_first_steps_are_taken_within_a_budget_per_turn_of_the_loop() -> None:
    """Once a turn has spent its budget on first steps (by the turn's clock), the rest
    start as ordinary tasks; the next turn has its budget again. A first step running
    inside another counts from the outer one's start."""
    from gateway._compat.asyncio import EAGER, Turn, started

    now = [0.0]
    ran: list[str] = []

    async def step(name: str, takes: float = 0.0) -> None:
        ran.append(name)
        now[0] += takes
        await asyncio.sleep(0)

    async def outer() -> None:
        ran.append("outer")
        now[0] += 2.0  # over the budget before its inner task starts
        await started(step("inner"))

    reset = EAGER.set(Turn(budget=1.0, clock=lambda: now[0]))
    try:
        first = started(step("first", takes=0.6))
        second = started(step("second", takes=0.6))  # 0.6 spent: still within
        third = started(step("third"))  # 1.2 spent: an ordinary task
        assert ran == ["first", "second"]
        await asyncio.sleep(0)  # the next turn: the budget again
        assert ran == ["first", "second", "third"]
        nested = started(outer())
        assert ran[-1] == "outer"  # its inner one waits for its own turn
        await asyncio.gather(first, second, third, nested)
        assert ran[-1] == "inner"
    finally:
        EAGER.reset(reset)


async def test_no_first_step_is_taken_where_eager_is_off(eager: None) -> None:
    import contextvars

    from gateway._compat.asyncio import EAGER, started

    ran: list[str] = []

    async def step() -> None:
        ran.append("step")

    def busy() -> asyncio.Task[None]:
        EAGER.set(None)  # as the endpoint does for a request admitted near the limit
        return started(step())

    task = contextvars.copy_context().run(busy)
    assert ran == []  # an ordinary task: it runs in its turn
    await task
    assert ran == ["step"] and EAGER.get() is not None  # the caller's own context untouched
