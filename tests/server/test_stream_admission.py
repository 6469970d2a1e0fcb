"""`/graphql/stream` and admission: a query's slot comes back however its operation ends
(a DELETE racing its POST included), a reservation that lapses stops its operations, and
the kind of an operation comes from its document, not from a word in its text. (Found by
a review that tried to break the README's promises.)"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx

from gateway.app import create_app
from gateway.simulator import Simulator
from tests.helpers import (
    SUBSCRIBE,
    FakeClock,
    Gate,
    demo_settings,
    no_sleep,
    running_gateway,
    serving,
    with_section,
    with_server,
)
from tests.server.test_admission import MAGMA, slow_accounts, until
from tests.server.test_incremental import MULTIPART, STREAMED, MultipartReader

TOKEN = "x-graphql-event-stream-token"
QUERY = '{ balances(accountIds: ["ourvoice-sn"]) { complete } }'
EVENTS = {"accept": "text/event-stream"}


async def test_a_query_stopped_before_it_ran_gives_its_slot_back(
    sim_transport: httpx.AsyncBaseTransport, clock: FakeClock
) -> None:
    settings = with_server(
        demo_settings(), admission="fixed", max_concurrent_requests=10, max_queued_requests=0
    )
    async with running_gateway(settings, sim_transport, clock) as gw:
        admission = gw.app.state.admission
        token = (await gw.http.put("/graphql/stream")).text
        headers = {TOKEN: token}
        for n in range(50):  # each DELETE sent with its POST: some cancel a task never run
            body = {"query": QUERY, "extensions": {"operationId": f"q{n}"}}
            await asyncio.gather(
                gw.http.post("/graphql/stream", json=body, headers=headers),
                gw.http.delete("/graphql/stream", params={"operationId": f"q{n}"}, headers=headers),
            )
        await until(lambda: admission.running == 0)
        operations = gw.app.state.events.single.reservations[token].operations
        after = await gw.post(QUERY)
    assert not operations  # every id free again
    assert after.status_code == 200


async def test_a_reservation_that_lapses_stops_what_was_posted_to_it(
    sim_transport: httpx.AsyncBaseTransport, clock: FakeClock
) -> None:
    settings = with_section(demo_settings(), "live", max_streams_per_client=2)
    async with running_gateway(settings, sim_transport, clock) as gw:
        single, live = gw.app.state.events.single, gw.app.state.live
        token = (await gw.http.put("/graphql/stream")).text
        for n in range(2):
            body = {
                "query": SUBSCRIBE,
                "variables": {"ids": ["ourvoice-sn"]},
                "extensions": {"operationId": f"s{n}"},
            }
            posted = await gw.http.post("/graphql/stream", json=body, headers={TOKEN: token})
            assert posted.status_code == 202
        await until(lambda: live.streams == 2)
        reservation = single.reservations[token]
        single.monotonic = lambda: 10.0**9  # its minute passed, never connected
        lapsed = await gw.http.get("/graphql/stream", params={"token": token})
        await until(lambda: live.streams == 0)
        await until(lambda: not reservation.operations)
        queued = reservation.events.qsize()
    assert lapsed.status_code == 404
    assert queued <= 32  # bounded, never buffered for nobody


async def test_a_query_mentioning_mutation_is_still_a_query(
    sim_transport: httpx.AsyncBaseTransport, clock: FakeClock
) -> None:
    """Held to its deadline (and abandoned when its client leaves), like any query."""
    gate = Gate(sim_transport)  # never opened: the upstream never answers
    async with running_gateway(slow_accounts(demo_settings()), gate, clock) as gw:
        gw.app.state.graphql.deadline_seconds = 0.2
        answer = await asyncio.wait_for(gw.post(MAGMA + "\n# no mutation here"), 10)
        gate.opened.set()
    assert answer.status_code == 503
    assert answer.json()["errors"][0]["extensions"]["code"] == "OVERLOADED"


async def test_an_answer_in_parts_holds_its_slot_until_its_last_part(
    sim: Simulator, clock: FakeClock
) -> None:
    settings = with_server(
        demo_settings(), admission="fixed", max_concurrent_requests=1, max_queued_requests=0
    )
    gate = Gate(httpx.ASGITransport(app=sim.app), "/magma/")
    app = create_app(settings, transport=gate, clock=clock, sleep=no_sleep)
    async with serving(app) as url, httpx.AsyncClient() as http:
        admission = app.state.admission
        request = {"query": STREAMED}
        async with http.stream("POST", f"{url}/graphql", json=request, headers=MULTIPART) as r:
            reader = MultipartReader(r)
            first = await reader.next()  # the fast accounts' part; magma still held
            while_streaming = await http.post(f"{url}/graphql", json={"query": QUERY})
            gate.opened.set()
            while await reader.next() is not None:
                pass
        await until(lambda: admission.running == 0)
        after = await http.post(f"{url}/graphql", json={"query": QUERY})
    assert first is not None and first["hasNext"] is True
    assert while_streaming.status_code == 503  # the one slot is the stream's
    assert while_streaming.json()["errors"][0]["extensions"]["code"] == "OVERLOADED"
    assert after.status_code == 200


async def test_a_query_on_the_event_stream_is_held_to_the_deadline(
    sim_transport: httpx.AsyncBaseTransport, clock: FakeClock
) -> None:
    gate = Gate(sim_transport)  # never opened: the upstream never answers
    async with running_gateway(slow_accounts(demo_settings()), gate, clock) as gw:
        gw.app.state.graphql.deadline_seconds = 0.2
        answer = await asyncio.wait_for(
            gw.http.post("/graphql/stream", json={"query": MAGMA}, headers=EVENTS), 10
        )
        admission = gw.app.state.admission
        await until(lambda: admission.running == 0)
        gate.opened.set()
    events = sse_events(answer.text)
    assert [name for name, _ in events] == ["next", "complete"]
    (error,) = events[0][1]["errors"]
    assert error["extensions"]["code"] == "OVERLOADED"


async def test_a_query_posted_to_a_reservation_is_held_to_the_deadline(
    sim_transport: httpx.AsyncBaseTransport, clock: FakeClock
) -> None:
    gate = Gate(sim_transport)
    async with running_gateway(slow_accounts(demo_settings()), gate, clock) as gw:
        gw.app.state.graphql.deadline_seconds = 0.2
        token = (await gw.http.put("/graphql/stream")).text
        body = {"query": MAGMA, "extensions": {"operationId": "late"}}
        posted = await gw.http.post("/graphql/stream", json=body, headers={TOKEN: token})
        reservation = gw.app.state.events.single.reservations[token]
        await asyncio.wait_for(until(lambda: not reservation.operations), 10)
        sent = [reservation.events.get_nowait() for _ in range(reservation.events.qsize())]
        await until(lambda: gw.app.state.admission.running == 0)
        gate.opened.set()
    assert posted.status_code == 202
    events = sse_events(b"".join(sent).decode())
    assert [name for name, _ in events] == ["next", "complete"]
    assert events[0][1]["id"] == "late"
    (error,) = events[0][1]["payload"]["errors"]
    assert error["extensions"]["code"] == "OVERLOADED"


async def test_one_operation_id_runs_once_when_two_posts_race(
    sim_transport: httpx.AsyncBaseTransport, clock: FakeClock
) -> None:
    """Both posts pass the id check, then wait for a slot; both get one at once: only
    one may run (the other: 409, its slot given back)."""
    gate = Gate(sim_transport)  # the operation stays running until the end
    settings = with_server(
        slow_accounts(demo_settings()),
        admission="fixed",
        max_concurrent_requests=2,
        max_queued_requests=2,
        queue_timeout_seconds=30,
        reserved_for_mutations=0,
    )
    async with running_gateway(settings, gate, clock) as gw:
        admission = gw.app.state.admission
        for _ in range(2):  # both slots taken by the test itself
            await admission.take("query", 60)
        token = (await gw.http.put("/graphql/stream")).text
        body = {"query": MAGMA, "extensions": {"operationId": "same"}}
        posts = [
            asyncio.create_task(gw.http.post("/graphql/stream", json=body, headers={TOKEN: token}))
            for _ in "ab"
        ]
        await until(lambda: admission.waiting == 2)
        admission.release("query")
        admission.release("query")  # both waiters handed a slot in the same turn
        answers = await asyncio.gather(*posts)
        running = admission.running
        reservation = gw.app.state.events.single.reservations[token]
        gate.opened.set()
        await until(lambda: not reservation.operations and admission.running == 0)
        sent = [reservation.events.get_nowait() for _ in range(reservation.events.qsize())]
    assert sorted(a.status_code for a in answers) == [202, 409]
    assert running == 1  # the refused post gave its slot back
    events = sse_events(b"".join(sent).decode())
    assert [name for name, _ in events] == ["next", "complete"]  # it ran once


def sse_events(text: str) -> list[tuple[str, Any]]:
    """(name, data) of each event in `text`, heartbeats skipped."""
    found = []
    for block in text.split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.split("\n") if ": " in line)
        if "event" in lines:
            data = lines.get("data")
            found.append((lines["event"], json.loads(data) if data else None))
    return found
