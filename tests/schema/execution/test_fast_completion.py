"""Planned completion answers exactly as graphql-core does: same data, same key order, same
errors at the same paths — for generated queries over data that breaks the schema's
promises (nulls in non-null fields, out-of-range Ints, values that are not lists) — and
plans shared between executions follow `@skip`/`@include` variables."""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import gc
import json
import weakref
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, ClassVar

import pytest
import strawberry
from hypothesis import HealthCheck, given, settings
from hypothesis_graphql import queries
from strawberry.extensions import ParserCache
from strawberry.schema.config import StrawberryConfig

from gateway._compat.graphql import helpers_holding_weakly
from gateway._compat.strawberry import core_schema, resolve_info
from gateway.schema import build_schema
from gateway.schema.execution.fast_completion import _SHARED, FastCompletionContext, _memoized
from gateway.schema.scalars import SCALAR_MAP


@strawberry.enum
class Kind(enum.Enum):
    CASH = "cash"
    CREDIT = "credit"


@strawberry.type
class Amount:
    value: Decimal
    currency: str


@strawberry.type
class Item:
    id: strawberry.ID
    label: str
    note: str | None
    count: int
    flag: bool
    kind: Kind
    at: datetime | None
    amount: Amount
    extra: Amount | None
    tags: list[str]

    @strawberry.field
    def shout(self) -> str:
        return self.label.upper()


@strawberry.type
class Group:
    name: str
    items: list[Item]
    maybe_items: list[Item | None] | None


@dataclasses.dataclass(frozen=True)
class AmountValue:
    value: Any
    currency: Any


@dataclasses.dataclass(frozen=True)
class ItemValue:
    id: Any
    label: Any
    note: Any = None
    count: Any = 1
    flag: Any = True
    kind: Any = Kind.CASH
    at: Any = None
    amount: Any = AmountValue(Decimal("1.50"), "XOF")
    extra: Any = None
    tags: Any = ()


GOOD = ItemValue("1", "first", "n", 3, False, Kind.CREDIT, datetime(2024, 6, 4, tzinfo=UTC))
GROUPS = [
    {"name": "fine", "items": [GOOD, ItemValue("2", "second", extra=AmountValue("7", "KES"))]},
    {
        "name": "broken",
        "items": [GOOD, ItemValue("3", None)],  # null in a non-null field: nulls `groups`
        "maybe_items": [
            None,
            GOOD,
            ItemValue("4", None),
            ItemValue("5", "big", count=2**40),  # an Int out of range
            ItemValue("6", "money", amount=AmountValue(Decimal("2"), None)),
            ItemValue("7", "tags", tags="not-a-list"),
        ],
    },
]


def groups() -> list[Group]:
    return [
        Group(name=g["name"], items=g["items"], maybe_items=g.get("maybe_items"))  # type: ignore[arg-type]
        for g in GROUPS
    ]


@strawberry.type
class Query:
    @strawberry.field
    def groups(self) -> list[Group]:
        return groups()

    @strawberry.field
    def group(self) -> Group:
        return groups()[0]

    @strawberry.field
    async def later(self) -> list[Group]:
        """The same data behind an awaitable: graphql-core's async completion path."""
        return groups()


def schema(fast: bool) -> strawberry.Schema:
    return strawberry.Schema(
        query=Query,
        config=StrawberryConfig(scalar_map=SCALAR_MAP),
        execution_context_class=FastCompletionContext if fast else None,
    )


PLAIN, FAST = schema(False), schema(True)


def answer(s: strawberry.Schema, query: str, variables: dict[str, Any] | None = None) -> str:
    result = s.execute_sync(query, variable_values=variables)
    errors = sorted((e.message, e.path) for e in result.errors or [])
    return json.dumps({"data": result.data, "errors": errors}, default=str)


def answer_async(s: strawberry.Schema, query: str) -> str:
    result = asyncio.run(s.execute(query))
    errors = sorted((e.message, e.path) for e in result.errors or [])
    return json.dumps({"data": result.data, "errors": errors}, default=str)


@settings(
    max_examples=300,
    derandomize=True,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
@given(query=queries(str(PLAIN), fields=["groups", "group"]))  # sync: no `later`
def test_generated_queries_answer_as_graphql_core_does(query: str) -> None:
    assert answer(FAST, query) == answer(PLAIN, query)


@settings(
    max_examples=150,
    derandomize=True,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
@given(query=queries(str(PLAIN), fields=["later", "group"]))
def test_generated_queries_answer_as_graphql_core_does_on_the_async_path(query: str) -> None:
    assert answer_async(FAST, query) == answer_async(PLAIN, query)


def test_broken_values_on_the_async_path_are_reported_as_graphql_core_does() -> None:
    broken = BROKEN.replace("groups {", "later {")
    assert answer_async(FAST, broken) == answer_async(PLAIN, broken)
    assert json.loads(answer_async(FAST, broken))["errors"]


BROKEN = """{ group { name } groups { name maybeItems { __typename id label count
  amount { value currency } tags shout at kind } } }"""


def test_broken_values_are_reported_at_their_paths() -> None:
    fast = json.loads(answer(FAST, BROKEN))
    assert fast == json.loads(answer(PLAIN, BROKEN))
    assert sorted(tuple(path) for _, path in fast["errors"]) == [
        ("groups", 1, "maybeItems", 2, "label"),
        ("groups", 1, "maybeItems", 3, "count"),
        ("groups", 1, "maybeItems", 4, "amount", "currency"),
        ("groups", 1, "maybeItems", 5, "tags"),
    ]
    broken = fast["data"]["groups"][1]["maybeItems"]
    assert broken[0] is None and broken[1]["label"] == "first" and broken[2:] == [None] * 4
    items = json.loads(answer(FAST, "{ groups { items { label } } }"))
    assert items["data"] is None  # a null in a non-null list nulls up to the root


def test_plans_follow_directive_variables_across_executions() -> None:
    query = """query($on: Boolean!) { group { items { id label @include(if: $on)
      amount @skip(if: $on) { value } } } }"""
    for on in (True, False, True, False):
        fast = answer(FAST, query, {"on": on})
        assert fast == answer(PLAIN, query, {"on": on})
        first = json.loads(fast)["data"]["group"]["items"][0]
        assert ("label" in first) is on and ("amount" in first) is not on


def test_aliases_and_fragments_keep_their_order() -> None:
    query = """{ group { items { b: label ...F a: id __typename } } }
      fragment F on Item { amount { currency } label }"""
    fast = answer(FAST, query)
    assert fast == answer(PLAIN, query)
    assert list(json.loads(fast)["data"]["group"]["items"][0]) == [
        "b",
        "amount",
        "label",
        "a",
        "__typename",
    ]


def test_the_gateway_schema_uses_planned_completion() -> None:
    assert build_schema().execution_context_class is FastCompletionContext


def test_plans_are_really_used() -> None:
    """Guards against a graphql-core upgrade that stops calling the overridden hook (the
    answers would still match, only slower)."""
    fresh = schema(True)
    assert fresh.execute_sync("{ group { items { id amount { value } } } }").data
    plans = _SHARED[core_schema(fresh)]._documents.values()
    assert any(plan is not None for d in plans for v in d.variants.values() for plan in v.values())


@strawberry.type(name="Counted")
class CountedAsInt:
    count: int


@strawberry.type(name="Counted")
class CountedAsString:
    count: str


@strawberry.type(name="Query")
class IntRoot:
    @strawberry.field
    def counted(self) -> CountedAsInt:
        return ItemValue("1", "x", count=5)  # type: ignore[return-value]


@strawberry.type(name="Query")
class StringRoot:
    @strawberry.field
    def counted(self) -> CountedAsString:
        return ItemValue("1", "x", count=5)  # type: ignore[return-value]


def test_schemas_sharing_parsed_documents_keep_their_own_plans() -> None:
    as_int, as_string = (
        strawberry.Schema(
            query=root,
            extensions=[lambda: ParserCache(maxsize=8)],  # one parsed document for both
            execution_context_class=FastCompletionContext,
        )
        for root in (IntRoot, StringRoot)
    )
    for _ in range(2):
        assert as_int.execute_sync("{ counted { count } }").data == {"counted": {"count": 5}}
        assert as_string.execute_sync("{ counted { count } }").data == {"counted": {"count": "5"}}


def test_an_enums_output_is_remembered_per_value_exactly() -> None:
    calls: list[Any] = []

    def coerce(value: Any) -> Any:
        calls.append(value)
        if value == "bad":
            raise ValueError("not a member")
        return f"NAME_{value}"

    remembered = _memoized(coerce, size=2)
    assert [remembered(v) for v in ("a", "a", "b", "b")] == ["NAME_a"] * 2 + ["NAME_b"] * 2
    assert calls == ["a", "b"], "each value coerced once"
    assert remembered("c") == remembered("c") == "NAME_c" and calls.count("c") == 2  # full
    assert remembered(["x"]) == "NAME_['x']"  # unhashable: coerced, not remembered
    for _ in range(2):
        with pytest.raises(ValueError, match="not a member"):
            remembered("bad")  # a refusal is never remembered as an answer


SHARED_GROUP = Group(name="shared", items=[GOOD], maybe_items=None)  # type: ignore[list-item]


@strawberry.type(name="Query")
class SharedRoot:
    @strawberry.field
    def shared(self) -> Group:
        """The same object for every request, as requests waiting on one read get it."""
        return SHARED_GROUP


def test_an_object_asked_for_again_the_same_way_is_rendered_once() -> None:
    """Requests that share a read share its rendering: the same object asked for by the
    same document comes back as the same completed answer — and asked for otherwise
    (another selection, another `@include`) as its own."""
    fast = strawberry.Schema(
        query=SharedRoot,
        extensions=[lambda: ParserCache(maxsize=8)],  # as the gateway's: one parse per text
        execution_context_class=FastCompletionContext,
    )
    plain = strawberry.Schema(query=SharedRoot)
    query = "query($on: Boolean!) { shared { name items { id label @include(if: $on) } } }"
    first = fast.execute_sync(query, variable_values={"on": True}).data
    again = fast.execute_sync(query, variable_values={"on": True}).data
    assert first is not None and again is not None
    assert again["shared"] is first["shared"]  # rendered once
    without = fast.execute_sync(query, variable_values={"on": False}).data
    other = fast.execute_sync("{ shared { items { label } } }").data
    for data, variables, text in (
        (first, {"on": True}, query),
        (without, {"on": False}, query),
        (other, None, "{ shared { items { label } } }"),
    ):
        assert data == plain.execute_sync(text, variable_values=variables).data
    assert without is not None and "label" not in without["shared"]["items"][0]


@strawberry.type(name="Query")
class WorkRoot:
    @strawberry.field
    async def gathered(self, info: strawberry.Info) -> list[int]:
        async def one(n: int) -> int:
            return n

        helpers = resolve_info(info).async_helpers
        helpers.track([TRACKED.put(1)])  # settled in the background, awaited by nobody
        return list(await helpers.gather([one(1), one(2)]))


TRACKED: asyncio.Queue[int] = asyncio.Queue()


class Watched(FastCompletionContext):
    alive: ClassVar[weakref.WeakSet[FastCompletionContext]] = weakref.WeakSet()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        Watched.alive.add(self)


def test_an_execution_is_freed_without_the_cycle_collector_and_its_helpers_still_work() -> None:
    """graphql-core's executor holds resolvers' helpers bound to itself: a cycle per
    request, and all the request hanging off it until a full collection."""
    s = strawberry.Schema(query=WorkRoot, execution_context_class=Watched)

    async def run() -> tuple[Any, int]:
        result = await s.execute("{ gathered }")
        return result.data, await asyncio.wait_for(TRACKED.get(), 1)

    gc.disable()
    try:
        assert asyncio.run(run()) == ({"gathered": [1, 2]}, 1)
        assert len(Watched.alive) == 0
    finally:
        gc.enable()


def test_work_tracked_after_its_execution_is_gone_is_still_settled() -> None:
    """A resolver still running once its executor has been freed (held weakly now) may
    track work: it still runs, and its failure is retrieved, not left unreported."""

    class Executor:  # stands in for graphql-core's, gone before the work is tracked
        def track_async_work(self, values: Any) -> None:
            raise AssertionError("the executor is gone")

    executor = Executor()
    helpers = helpers_holding_weakly(executor)
    del executor
    ran: list[str] = []

    async def work(fail: bool) -> None:
        ran.append("failing" if fail else "fine")
        if fail:
            raise RuntimeError("nobody waits for this")

    errors: list[dict[str, Any]] = []

    async def main() -> None:
        asyncio.get_running_loop().set_exception_handler(lambda _, c: errors.append(c))
        helpers.track([work(False), work(True), "not awaitable"])
        for _ in range(3):
            await asyncio.sleep(0)

    asyncio.run(main())
    gc.collect()
    assert ran == ["fine", "failing"]
    assert errors == []  # the failure was retrieved ("exception was never retrieved": none)
