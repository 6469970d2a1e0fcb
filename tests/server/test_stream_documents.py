"""A document that does not parse — a syntax error, more tokens than `[limits]
max_tokens` — is answered on `/graphql/stream` as on `/graphql`: a `VALIDATION` error as
the operation's one result, then `complete`, in both of graphql-sse's modes, and no ERROR
line (`schema/execution/parsed_documents.py`). Before, the stream began (200) and was cut
mid-answer with a traceback, and in single connection mode the operation never answered."""

from __future__ import annotations

import logging
from typing import Any

import httpx
import pytest

from gateway.config.security import RequestLimits
from gateway.config.settings import Settings
from tests.helpers import FakeClock, Ticker, with_section
from tests.services.test_live import STREAM, Events, live_gateway

MAX_TOKENS = RequestLimits().max_tokens
BROKEN = {
    "syntax": "{ countries {",
    "subscription": "subscription { balanceUpdates(",
    "tokens": "{ " + "countries { code } " * (MAX_TOKENS // 4 + 1) + "}",
}


def refused_as_validation(payload: dict[str, Any]) -> None:
    (error,) = payload["errors"]
    assert error["extensions"]["code"] == "VALIDATION", error
    assert "data" not in payload or payload["data"] is None


@pytest.mark.parametrize("document", sorted(BROKEN))
async def test_a_document_that_does_not_parse_is_answered_on_the_stream(
    document: str,
    sim_transport: httpx.AsyncBaseTransport,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    body = {"query": BROKEN[document]}
    async with (
        live_gateway(sim_transport, clock, Ticker()) as (url, _),
        httpx.AsyncClient(timeout=30, base_url=url) as http,
    ):
        plain = (await http.post("/graphql", json=body)).json()
        async with http.stream("POST", "/graphql/stream", json=body, headers=STREAM) as r:
            events = Events(r)
            name, payload = await events.next()
            ended = await events.next()
    refused_as_validation(plain)
    assert name == "next"
    refused_as_validation(payload)
    assert ended == ("complete", None)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_a_document_that_does_not_parse_is_answered_in_single_connection_mode(
    sim_transport: httpx.AsyncBaseTransport,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    token_header = "x-graphql-event-stream-token"
    async with (
        live_gateway(sim_transport, clock, Ticker()) as (url, _),
        httpx.AsyncClient(timeout=30, base_url=url) as http,
    ):
        auth = {token_header: (await http.put("/graphql/stream")).text}
        async with http.stream("GET", "/graphql/stream", headers={**auth, **STREAM}) as opened:
            events = Events(opened)
            for n, document in enumerate(sorted(BROKEN)):
                body = {"query": BROKEN[document], "extensions": {"operationId": f"b{n}"}}
                posted = await http.post("/graphql/stream", json=body, headers=auth)
                assert posted.status_code == 202
                name, answer = await events.next()
                assert (name, answer["id"]) == ("next", f"b{n}")
                refused_as_validation(answer["payload"])
                assert await events.next() == ("complete", {"id": f"b{n}"})
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_the_token_limit_still_holds_with_a_smaller_budget(
    sim_transport: httpx.AsyncBaseTransport, clock: FakeClock
) -> None:
    """The parse reads the configured budget, not the default: a document the default
    allows is refused under a budget of 20 tokens, on both paths."""
    document = {"query": "{ " + "countries { code } " * 6 + "}"}  # 26 tokens

    def small(settings: Settings) -> Settings:
        return with_section(settings, "security", limits=RequestLimits(max_tokens=20))

    async with (
        live_gateway(sim_transport, clock, Ticker(), small) as (url, _),
        httpx.AsyncClient(timeout=30, base_url=url) as http,
    ):
        plain = (await http.post("/graphql", json=document)).json()
        async with http.stream("POST", "/graphql/stream", json=document, headers=STREAM) as r:
            name, payload = await Events(r).next()
    refused_as_validation(plain)
    assert name == "next"
    refused_as_validation(payload)
