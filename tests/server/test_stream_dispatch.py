"""`/graphql/stream` is handed straight to its endpoint (`server/stream_dispatch.py`),
past Starlette's routing: what the routing did for it still holds — a method the path
does not answer is refused with its `Allow`, and with origins configured a stream's
answer carries its CORS headers, a query's and a refusal's alike."""

from __future__ import annotations

import httpx

from tests.helpers import FakeClock, demo_settings, running_gateway, with_server

QUERY = '{ balances(accountIds: ["ourvoice-sn"]) { complete } }'
EVENTS = {"accept": "text/event-stream"}
ORIGIN = "https://dash.example"


async def test_a_method_the_stream_path_does_not_answer_is_refused_with_its_allow(
    sim_transport: httpx.AsyncBaseTransport, clock: FakeClock
) -> None:
    async with running_gateway(demo_settings(), sim_transport, clock) as gw:
        patched = await gw.http.patch("/graphql/stream", json={"query": QUERY}, headers=EVENTS)
        answered = await gw.http.post("/graphql/stream", json={"query": QUERY}, headers=EVENTS)
    assert patched.status_code == 405
    assert set(patched.headers["allow"].split(", ")) == {"GET", "HEAD", "POST", "PUT", "DELETE"}
    assert answered.status_code == 200 and "event: complete" in answered.text


async def test_a_streams_answers_carry_cors_headers_for_a_configured_origin(
    sim_transport: httpx.AsyncBaseTransport, clock: FakeClock
) -> None:
    settings = with_server(demo_settings(), cors_origins=(ORIGIN,))
    async with running_gateway(settings, sim_transport, clock) as gw:
        streamed = await gw.http.post(
            "/graphql/stream", json={"query": QUERY}, headers={**EVENTS, "origin": ORIGIN}
        )
        refused = await gw.http.post(  # no Accept: text/event-stream — refused, with CORS
            "/graphql/stream", json={"query": QUERY}, headers={"origin": ORIGIN}
        )
        other = await gw.http.post(
            "/graphql/stream",
            json={"query": QUERY},
            headers={**EVENTS, "origin": "https://x.example"},
        )
    assert streamed.status_code == 200 and "event: complete" in streamed.text
    assert streamed.headers["access-control-allow-origin"] == ORIGIN
    assert refused.status_code == 406
    assert refused.headers["access-control-allow-origin"] == ORIGIN
    assert "access-control-allow-origin" not in other.headers
