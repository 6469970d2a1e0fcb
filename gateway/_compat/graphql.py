"""graphql-core internals the planned completion builds on (held to 3.3.x).

`FastCompletionContext` overrides `collect_and_execute_subfields` and calls
`collect_subfields` of graphql-core's `ExecutionContext` — methods its docs do not
promise — and types their field groups with `FieldDetailsList`, from a module graphql-core
does not re-export. `HOOKS` names each method with the parameters the override relies on.

`helpers_holding_weakly` replaces the executor's `async_helpers` (an attribute graphql-core
sets in `Executor.__init__`, bound to its `track_async_work`) — see its doc.

`settle_siblings` replaces `gather_with_cancel` as `graphql.execution.executor` imported it
— see its doc.

`forget_field_groups` gives a subscription event's executor its own memo of field groups
(`_relevant_sub_fields`, `_stream_usages`, attributes graphql-core sets in
`Executor.__init__`) — see its doc.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from inspect import isawaitable
from typing import Any

from graphql import GraphQLResolveInfoHelpers
from graphql.execution import executor as graphql_executor
from graphql.execution.collect_fields import FieldDetailsList
from graphql.pyutils import RefMap

__all__ = [
    "HOOKS",
    "FieldDetailsList",
    "forget_field_groups",
    "helpers_holding_weakly",
    "settle_siblings",
]

HOOKS: dict[str, tuple[str, ...]] = {
    "collect_and_execute_subfields": (
        "return_type",
        "field_details_list",
        "path",
        "result",
        "position_context",
    ),
    "collect_subfields": ("return_type", "field_details_list"),
}


def helpers_holding_weakly(executor: Any) -> GraphQLResolveInfoHelpers:
    """The resolvers' async helpers of `executor`, as graphql-core 3.3 builds them but
    holding the executor weakly. Its own are bound methods of the executor it holds them
    on: a reference cycle per execution, and with it the whole request (context, tasks,
    the ASGI exchange) left for the cycle collector — a full collection every few hundred
    requests, tens of milliseconds each under load (issue #24's late sheds). Held weakly,
    the request is freed when its last reference goes.

    `gather` is what `Executor.gather_async_work` does, its siblings settled as
    `settle_siblings` says (one way of gathering for the whole execution). `track` hands
    the work to the executor while it lives; once it is gone (nothing would wait for its
    work any more) the awaitables are still settled, their errors retrieved."""
    owner = weakref.ref(executor)

    def gather(values: Sequence[Awaitable[Any]]) -> Awaitable[list[Any]]:
        return _settling_gather(*values)  # as the executor's own, once `settle_siblings`

    def track(values: Sequence[Any]) -> None:
        live = owner()
        if live is not None:
            live.track_async_work(values)
            return
        for value in values:
            if isawaitable(value):
                asyncio.ensure_future(value).add_done_callback(_retrieved)

    return GraphQLResolveInfoHelpers(gather=gather, track=track)


def _retrieved(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


Start = Callable[[Coroutine[Any, Any, Any]], "asyncio.Future[Any]"]
_START: dict[str, Start] = {"sibling": asyncio.ensure_future}  # how a resolver coroutine runs


async def _settling_gather(*awaitables: Awaitable[Any]) -> list[Any]:
    """As `gather_with_cancel`, but the siblings of the first failure run to their end
    rather than being cancelled (their results dropped, their errors retrieved)."""
    futures = [
        _START["sibling"](aw) if asyncio.iscoroutine(aw) else asyncio.ensure_future(aw)
        for aw in awaitables
    ]
    try:
        return await asyncio.gather(*futures)
    except Exception:
        await asyncio.gather(*futures, return_exceptions=True)
        raise


def settle_siblings(start: Start = asyncio.ensure_future) -> None:
    """graphql-core 3.3 gathers a list's items and an object's fields with
    `gather_with_cancel`: when one fails where the schema allows no null (the error then
    nulls its parent), the others are cancelled — and one cancelled before it began never
    awaits the resolver coroutine graphql-core already made for it: "coroutine … was never
    awaited" on stderr for a client's bad argument deep in a list (the fuzz test found it).
    Installed, the siblings finish (bounded by the request's deadline, as any read) and
    nothing is left unawaited. `start` runs each sibling (the gateway's: its first step at
    once, so a field's upstream calls leave in the request's turn). Idempotent."""
    _START["sibling"] = start
    graphql_executor.gather_with_cancel = _settling_gather  # type: ignore[attr-defined]


def forget_field_groups(event_executor: Any) -> None:
    """Give a subscription event's executor memos of its own. graphql-core 3.3 builds it
    as a shallow copy of the subscription's executor (`build_per_event_executor`), so it
    shares the memo `collect_subfields` keeps on the identity of a field group — and every
    event collects its root fields afresh, into new groups: each event added an entry,
    the group kept alive with it, for as long as the subscription lasted (about 400 bytes
    an event on a balance subscription: a day's stream of a change a second, 35 MB).
    Fresh memos per event keep what they are for (the items of one event's lists)."""
    event_executor._relevant_sub_fields = {}
    event_executor._stream_usages = RefMap()
