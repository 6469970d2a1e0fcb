"""`/graphql/stream` and admission: a query's slot comes back however its operation ends
(a DELETE racing its POST included), a reservation that lapses stops its operations, and
the kind of an operation comes from its document, not from a word in its text. (Found by
a review that tried to break the README's promises.)"""

from __future__ import annotations

import asyncio

import httpx

from tests.helpers import (
    SUBSCRIBE,
    FakeClock,
    Gate,
    demo_settings,
    running_gateway,
    with_section,
    with_server,
)
from tests.server.test_admission import MAGMA, slow_accounts, until

TOKEN = "x-graphql-event-stream-token"
QUERY = '{ balances(accountIds: ["ourvoice-sn"]) { complete } }'


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
