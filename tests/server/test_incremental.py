"""Results as they arrive (`@defer` / `@stream`) on a real server, read off the wire.

One account's provider is held at a gate the test opens, so "the others arrive first" is
an order the test controls, not a race: every part before the gate opens is on the wire
while the slow provider still has not answered. Parts are parsed from the raw bytes, their
framing (boundaries, `Content-Length`, events) checked exactly, and the parts merged as a
client would; the merged answer must equal the same query answered whole.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

import httpx
import pytest
from graphql import InitialIncrementalExecutionResult
from graphql.execution.types import PendingResult

from gateway.app import create_app
from gateway.config.settings import Settings
from gateway.schema import build_schema
from gateway.server.incremental import Framing, Legacy, Parts, body
from gateway.server.media import LEGACY_MULTIPART, streaming
from gateway.server.view import GatewayGraphQL
from gateway.simulator import Simulator
from tests.helpers import (
    FULL_KEY,
    FakeClock,
    Gate,
    demo_settings,
    merge,
    no_sleep,
    production,
    refuse_float,
    sample,
    serving,
    with_section,
)

SLOW = "magma"
FAST = {"ourvoice-sn", "ourvoice-ci", "muda-ug", "paymob-eg"}
RESULT = """__typename
  ... on AccountBalance { account { id } stale balances { id total { amount currency } } }
  ... on ProviderFailure { account { id } code }"""
STREAMED = f"""query Dashboard {{ balances {{
  results @stream {{ {RESULT} }}
  ... @defer(label: "totals") {{ totals {{ currency kind total {{ amount }} }} complete }}
}} }}"""
WHOLE = f"""query Dashboard {{ balances {{
  results {{ {RESULT} }} totals {{ currency kind total {{ amount }} }} complete }} }}"""
MULTIPART = {"accept": "multipart/mixed, application/graphql-response+json"}
EVENTS = {"accept": "text/event-stream, application/json"}


@contextlib.asynccontextmanager
async def gateway(
    sim: Simulator, clock: FakeClock, settings: Settings | None = None
) -> AsyncIterator[tuple[str, Gate]]:
    gate = Gate(httpx.ASGITransport(app=sim.app), f"/{SLOW}/")
    app = create_app(settings or demo_settings(), transport=gate, clock=clock, sleep=no_sleep)
    async with serving(app) as url:
        yield url, gate


class MultipartReader:
    """Parts off a multipart/mixed body as its bytes arrive, the framing checked exactly."""

    def __init__(self, response: httpx.Response) -> None:
        self.chunks = response.aiter_raw()
        self.buffer = b""
        self.opened = False
        self.closed = False

    async def _more(self) -> None:
        async with asyncio.timeout(20):  # a bound on a wait for the server, not a timing test
            self.buffer += await anext(self.chunks)

    async def next(self) -> dict[str, Any] | None:
        """The next part, or None after the closing delimiter."""
        while not self.opened:
            if len(self.buffer) >= 3:
                assert self.buffer.startswith(b"---"), self.buffer[:20]
                self.buffer, self.opened = self.buffer[3:], True
            else:
                await self._more()
        while True:
            if self.buffer.startswith(b"--\r\n"):
                self.closed = True
                assert self.buffer == b"--\r\n", "nothing may follow the closing delimiter"
                return None
            head_end = self.buffer.find(b"\r\n\r\n")
            if head_end >= 0:
                head = self.buffer[:head_end].decode()
                assert head.startswith("\r\n"), head
                headers = dict(line.split(": ", 1) for line in head.strip().split("\r\n"))
                assert headers["Content-Type"] == "application/json; charset=utf-8"
                length = int(headers["Content-Length"])
                end = head_end + 4 + length
                if len(self.buffer) >= end + 5:
                    assert self.buffer[end : end + 5] == b"\r\n---", "a part ends at its length"
                    payload: dict[str, Any] = json.loads(
                        self.buffer[head_end + 4 : end], parse_float=refuse_float
                    )
                    self.buffer = self.buffer[end + 5 :]
                    return payload
            await self._more()


def by_account(answer: dict[str, Any]) -> dict[str, Any]:
    return {r["account"]["id"]: r for r in answer["data"]["balances"]["results"]}


def streamed_ids(part: dict[str, Any]) -> set[str]:
    return {r["account"]["id"] for i in part.get("incremental", []) for r in i.get("items", [])}


async def test_each_account_arrives_as_it_answers_and_totals_come_last(
    sim: Simulator, clock: FakeClock
) -> None:
    async with gateway(sim, clock) as (url, gate), httpx.AsyncClient() as http:
        gate.opened.set()
        whole = (await http.post(f"{url}/graphql", json={"query": WHOLE})).json()
        gate.opened = asyncio.Event()  # held again
        clock.advance(3600)  # every cached balance expired: each account is read again
        request = {"query": STREAMED}
        async with http.stream("POST", f"{url}/graphql", json=request, headers=MULTIPART) as r:
            assert r.status_code == 200
            assert r.headers["content-type"] == 'multipart/mixed; boundary="-"'
            assert r.headers["cache-control"] == "no-store"
            reader = MultipartReader(r)
            initial = await reader.next()
            assert initial is not None
            assert initial["data"] == {"balances": {"results": []}}
            assert initial["hasNext"] is True
            assert {p["label"] for p in initial["pending"] if "label" in p} == {"totals"}
            parts, seen = [initial], set[str]()
            while seen != FAST:  # every fast account, while the slow one is still held
                part = await reader.next()
                assert part is not None and part["hasNext"] is True
                assert "completed" not in part, "nothing completes before the slow account"
                parts.append(part)
                seen |= streamed_ids(part)
            assert SLOW not in seen
            gate.opened.set()
            while (part := await reader.next()) is not None:
                parts.append(part)
            assert reader.closed and parts[-1]["hasNext"] is False
    # The slow account's item comes before the totals are complete.
    slow_at = next(i for i, p in enumerate(parts) if SLOW in streamed_ids(p))
    totals_at = next(
        i
        for i, p in enumerate(parts)
        if any("totals" in x.get("data", {}) for x in p.get("incremental", []))
    )
    assert slow_at <= totals_at
    merged = merge(parts)
    assert by_account(merged) == by_account(whole)
    assert merged["data"]["balances"]["totals"] == whole["data"]["balances"]["totals"]
    assert merged["data"]["balances"]["complete"] is True


async def test_server_sent_events_carry_the_same_parts(sim: Simulator, clock: FakeClock) -> None:
    async with gateway(sim, clock) as (url, gate), httpx.AsyncClient() as http:
        gate.opened.set()
        whole = (await http.post(f"{url}/graphql", json={"query": WHOLE})).json()
        response = await http.post(f"{url}/graphql", json={"query": STREAMED}, headers=EVENTS)
    assert response.headers["content-type"].startswith("text/event-stream")
    events = response.text.split("\n\n")
    assert events[-1] == "", "every event ends with a blank line"
    *nexts, complete = events[:-1]
    assert complete == "event: complete\ndata: "
    parts = []
    for text in nexts:
        name, data = text.split("\n")
        assert name == "event: next" and data.startswith("data: ")
        parts.append(json.loads(data[len("data: ") :]))
    assert parts[0]["hasNext"] is True and parts[-1]["hasNext"] is False
    assert by_account(merge(parts)) == by_account(whole)


async def test_without_stream_results_keep_the_order_asked(
    sim: Simulator, clock: FakeClock
) -> None:
    query = f'{{ balances(accountIds: ["{SLOW}", "ourvoice-sn"]) {{ results {{ {RESULT} }} }} }}'
    async with gateway(sim, clock) as (url, gate), httpx.AsyncClient() as http:
        asked = asyncio.ensure_future(http.post(f"{url}/graphql", json={"query": query}))
        async with asyncio.timeout(20):
            while sim.state.calls_to("ourvoice-sn", "balance") == 0:  # noqa: ASYNC110
                await asyncio.sleep(0.01)  # until the fast account has been read
        gate.opened.set()
        answer = (await asyncio.wait_for(asked, 20)).json()
    ids = [r["account"]["id"] for r in answer["data"]["balances"]["results"]]
    assert ids == [SLOW, "ourvoice-sn"]


async def test_parts_need_an_accept_that_names_a_stream(sim: Simulator, clock: FakeClock) -> None:
    async with gateway(sim, clock) as (url, gate), httpx.AsyncClient() as http:
        gate.opened.set()
        graphql = f"{url}/graphql"
        json_only = await http.post(graphql, json={"query": STREAMED})
        wildcard = await http.post(graphql, json={"query": STREAMED}, headers={"accept": "*/*"})
        invalid = await http.post(
            graphql, json={"query": "{ balances { results @stream { nope } } }"}, headers=MULTIPART
        )
        mutation = await http.post(
            graphql,
            json={
                "query": 'mutation { ... @defer { topUp(input: {accountId: "x"}) { __typename } } }'
            },
            headers=MULTIPART,
        )
        parts_only = await http.post(
            graphql, json={"query": "{ accounts { id } }"}, headers={"accept": "multipart/mixed"}
        )
    for refused in (json_only, wildcard):
        assert refused.status_code == 406
        assert (
            "Accept multipart/mixed or text/event-stream" in refused.json()["errors"][0]["message"]
        )
    # A request error is answered whole, as application/graphql-response+json says: 400.
    assert invalid.status_code == 400
    assert invalid.headers["content-type"].startswith("application/graphql-response+json")
    assert invalid.json()["errors"][0]["extensions"]["code"] == "VALIDATION"
    assert "data" not in invalid.json()
    assert mutation.status_code == 400
    assert "A mutation is answered whole" in mutation.json()["errors"][0]["message"]
    # A client that reads only parts gets a plain answer as one part.
    assert parts_only.status_code == 200
    assert parts_only.text.startswith("---\r\n") and parts_only.text.endswith("-----\r\n")
    assert '{"data":{"accounts":[' in parts_only.text


async def test_an_unknown_account_is_an_error_in_the_first_part(
    sim: Simulator, clock: FakeClock
) -> None:
    query = (
        f'{{ balances(accountIds: ["nope", "ourvoice-sn"]) {{ results @stream {{ {RESULT} }} }} }}'
    )
    async with gateway(sim, clock) as (url, _), httpx.AsyncClient() as http:
        response = await http.post(f"{url}/graphql", json={"query": query}, headers=EVENTS)
    first = json.loads(response.text.split("\n\n")[0].split("data: ", 1)[1])
    (error,) = first["errors"]
    assert error["extensions"]["code"] == "NOT_FOUND" and error["path"] == ["balances"]


async def test_a_stream_is_counted_when_it_ends_with_its_failures(
    sim: Simulator, clock: FakeClock
) -> None:
    """Credentials are checked before anything streams; the request's outcome (here
    partial: one provider failed) and its accounts are recorded when the last part is
    sent, not when the first is."""
    async with gateway(sim, clock, production(demo_settings())) as (url, gate):
        gate.opened.set()
        async with httpx.AsyncClient() as http:
            anonymous = await http.post(
                f"{url}/graphql", json={"query": STREAMED}, headers=MULTIPART
            )
            keyed = {**MULTIPART, "authorization": f"Bearer {FULL_KEY}"}
            allowed = await http.post(f"{url}/graphql", json={"query": STREAMED}, headers=keyed)
    assert anonymous.status_code == 401 and allowed.status_code == 200
    sim.state.set_faults(SLOW, status=503)
    async with gateway(sim, clock) as (url, gate), httpx.AsyncClient() as http:
        gate.opened.set()
        streamed = await http.post(f"{url}/graphql", json={"query": STREAMED}, headers=MULTIPART)
        metrics = (await http.get(f"{url}/metrics")).text
    assert '"code":"UPSTREAM_UNAVAILABLE"' in streamed.text
    partial = sample(
        metrics,
        "gateway_requests_total",
        operation_type="query",
        operation_name="other",
        outcome="partial",
        reason="",
    )
    assert partial == 1, [
        line for line in metrics.splitlines() if "gateway_requests_total{" in line
    ]


async def test_past_the_deadline_whatever_is_pending_completes_with_an_error() -> None:
    """The deadline bounds the whole answer: the last part completes each pending id
    with OVERLOADED, and the body still closes properly."""

    class Request:
        class state:
            pass

    class Context:
        def __init__(self) -> None:
            self.errors: list[Any] = []

    closed: list[bool] = []

    async def never() -> AsyncGenerator[Any, None]:
        try:
            await asyncio.Event().wait()
            yield None
        finally:
            closed.append(True)

    view = GatewayGraphQL(build_schema(), development=False, max_errors=10)
    parts = Parts(view, Request(), Context())  # type: ignore[arg-type]
    first = InitialIncrementalExecutionResult(
        data={"balances": {"results": []}},
        pending=[PendingResult("0", ["balances", "results"])],
        has_next=True,
    )
    ended: list[bool] = []
    rest = never()
    past = asyncio.get_running_loop().time()
    chunks = [
        chunk
        async for chunk in body(
            parts, first, rest, Framing("text/event-stream"), past, ended.append
        )
    ]
    last = json.loads(chunks[1].decode().split("data: ", 1)[1])
    assert last == {
        "hasNext": False,
        "completed": [
            {
                "id": "0",
                "errors": [
                    {
                        "message": "Not known within the request's deadline: retry shortly.",
                        "extensions": {"code": "OVERLOADED"},
                    }
                ],
            }
        ],
    }
    assert chunks[-1] == b"event: complete\ndata: \n\n" and ended == [True]
    assert closed == [True], "the results were closed"


async def test_the_event_stream_path_answers_a_streamed_query_in_parts(
    sim: Simulator, clock: FakeClock
) -> None:
    async with gateway(sim, clock) as (url, gate), httpx.AsyncClient() as http:
        gate.opened.set()
        response = await http.post(
            f"{url}/graphql/stream", json={"query": STREAMED}, headers=EVENTS
        )
    payloads = [
        json.loads(line[len("data: ") :])
        for line in response.text.split("\n")
        if line.startswith("data: {")
    ]
    assert payloads[0]["pending"] and payloads[-1]["hasNext"] is False
    assert set(by_account(merge(payloads))) == FAST | {SLOW}


@pytest.mark.parametrize(
    ("accept", "chosen"),
    [
        ("multipart/mixed", "multipart/mixed"),
        ("text/event-stream", "text/event-stream"),
        ("text/event-stream, multipart/mixed", "text/event-stream"),  # a tie: the first
        ("text/event-stream;q=0.5, multipart/mixed", "multipart/mixed"),
        ("multipart/mixed;q=0, application/json", None),
        ("*/*", None),
        ("multipart/mixed;incrementalSpec=v0.2", "multipart/mixed"),  # Apollo's current
        ("multipart/mixed;deferSpec=20220824, application/json", LEGACY_MULTIPART),
        ('multipart/mixed; boundary="graphql"; deferSpec=20220824', LEGACY_MULTIPART),
    ],
)
def test_the_stream_type_is_chosen_by_accept(accept: str, chosen: str | None) -> None:
    assert streaming(accept) == chosen


@pytest.mark.parametrize(
    "accept", ["multipart/mixed;deferSpec=20990101", "multipart/mixed;incrementalSpec=v9"]
)
async def test_an_unknown_spec_is_406_naming_the_ones_served(
    accept: str, sim: Simulator, clock: FakeClock
) -> None:
    async with gateway(sim, clock) as (url, gate), httpx.AsyncClient() as http:
        gate.opened.set()
        refused = await http.post(
            f"{url}/graphql", json={"query": STREAMED}, headers={"accept": accept}
        )
    assert refused.status_code == 406
    message = refused.json()["errors"][0]["message"]
    assert "deferSpec=20220824" in message and "incrementalSpec=v0.2" in message


def merge_2022(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """The 2022 format merged as its readers do (written from that format, not from the
    gateway): `data` merged into the object at `path`; `items` appended to the list at
    `path[:-1]`, whose length must be `path[-1]` (the first item's index)."""

    def at(node: Any, path: list[Any]) -> Any:
        for key in path:
            node = node[key]
        return node

    def deep(target: dict[str, Any], data: dict[str, Any]) -> None:
        for key, value in data.items():
            if isinstance(value, dict) and isinstance(target.get(key), dict):
                deep(target[key], value)
            else:
                target[key] = value

    merged: dict[str, Any] = json.loads(json.dumps(parts[0]))
    for part in parts[1:]:
        assert set(part) <= {"incremental", "hasNext"}, part  # no pending, no completed
        for entry in part.get("incremental", []):
            assert "id" not in entry and "errors" not in entry
            if "items" in entry:
                listed = at(merged["data"], entry["path"][:-1])
                assert len(listed) == entry["path"][-1]
                listed.extend(entry["items"])
            else:
                deep(at(merged["data"], entry["path"]), entry["data"])
    return merged


async def test_the_2022_format_merges_to_the_whole_answer(sim: Simulator, clock: FakeClock) -> None:
    """Apollo Client's `Defer20220824Handler` (and Relay) ask with `deferSpec=20220824`:
    the same parts in that format, which merge to exactly the answer given whole."""
    async with gateway(sim, clock) as (url, gate), httpx.AsyncClient() as http:
        gate.opened.set()
        whole = (await http.post(f"{url}/graphql", json={"query": WHOLE})).json()
        clock.advance(3600)
        headers = {"accept": "multipart/mixed;deferSpec=20220824, application/json"}
        request = {"query": STREAMED}
        async with http.stream("POST", f"{url}/graphql", json=request, headers=headers) as r:
            assert r.headers["content-type"] == 'multipart/mixed; boundary="-"; deferSpec=20220824'
            reader = MultipartReader(r)
            parts = []
            while (part := await reader.next()) is not None:
                parts.append(part)
    assert "pending" not in parts[0] and parts[0]["hasNext"] is True
    assert parts[-1]["hasNext"] is False
    labels = {e.get("label") for p in parts[1:] for e in p.get("incremental", [])}
    assert "totals" in labels
    merged = merge_2022(parts)
    assert by_account(merged) == by_account(whole)
    assert merged["data"]["balances"]["totals"] == whole["data"]["balances"]["totals"]
    assert merged["data"]["balances"]["complete"] is True


def get_allowed() -> Settings:
    settings = demo_settings()
    limits = dataclasses.replace(settings.security.limits, allow_get=True)
    return with_section(settings, "security", limits=limits)


async def test_a_get_is_answered_in_parts_and_a_client_that_leaves_is_counted_cancelled(
    sim: Simulator, clock: FakeClock
) -> None:
    async with gateway(sim, clock, get_allowed()) as (url, gate), httpx.AsyncClient() as http:
        params = {"query": STREAMED}
        async with http.stream("GET", f"{url}/graphql", params=params, headers=MULTIPART) as r:
            assert r.status_code == 200
            reader = MultipartReader(r)
            first = await reader.next()
            assert first is not None and first["hasNext"] is True
        # The client left with the slow provider still held: the stream is abandoned.
        async with asyncio.timeout(20):
            while True:  # until the server has seen the disconnect (not a timing assert)
                metrics = (await http.get(f"{url}/metrics")).text
                if "cancelled" in metrics:
                    break
                await asyncio.sleep(0.05)
        gate.opened.set()
    cancelled = sample(
        metrics,
        "gateway_requests_total",
        operation_type="query",
        operation_name="other",
        outcome="cancelled",
        reason="",
    )
    assert cancelled == 1


def test_the_2022_format_of_failures_and_nested_paths() -> None:
    """What failed is an entry with its errors and null data or items; a fragment's
    `subPath` joins its path; a stream's index counts the items already sent."""
    legacy = Legacy()
    first = legacy.initial(
        {
            "data": {"a": {"list": [1]}, "b": {}},
            "pending": [
                {"id": "0", "path": ["a", "list"]},
                {"id": "1", "path": ["b"], "label": "late"},
            ],
            "hasNext": True,
        }
    )
    assert first == {"data": {"a": {"list": [1]}, "b": {}}, "hasNext": True}
    second = legacy.subsequent(
        {
            "incremental": [{"id": "0", "items": [2, 3]}, {"id": "1", "data": {"x": 1}}],
            "hasNext": True,
        }
    )
    assert second == {
        "hasNext": True,
        "incremental": [
            {"items": [2, 3], "path": ["a", "list", 1]},
            {"data": {"x": 1}, "path": ["b"], "label": "late"},
        ],
    }
    error = {"message": "gone", "extensions": {"code": "OVERLOADED"}}
    third = legacy.subsequent(
        {
            "pending": [{"id": "2", "path": ["b"]}],
            "incremental": [
                {"id": "2", "subPath": ["y"], "data": {"z": 2}},
                {"id": "0", "items": [4]},
            ],
            "completed": [{"id": "0", "errors": [error]}, {"id": "1"}],
            "hasNext": False,
        }
    )
    assert third == {
        "hasNext": False,
        "incremental": [
            {"data": {"z": 2}, "path": ["b", "y"]},
            {"items": [4], "path": ["a", "list", 3]},
            {"items": None, "path": ["a", "list"], "errors": [error]},
        ],
    }
