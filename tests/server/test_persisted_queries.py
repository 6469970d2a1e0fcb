"""Automatic persisted queries as Apollo defines them, in the `off` (default) and `allow`
modes of trusted documents: an unknown hash is `PERSISTED_QUERY_NOT_FOUND`; the hash with
its document registers it, once its text hashes to the id and it validates; the hash alone
then runs it — on another replica sharing the Redis cache too; `enforce` registers nothing."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Any

import httpx
import pytest

from gateway.config.documents import TrustedDocumentsSettings
from gateway.simulator import Simulator
from tests.helpers import FakeClock, GatewayClient, demo_settings, running_gateway, with_cache

QUERY = 'query Apq { balances(accountIds: ["ourvoice-sn"]) { complete } }'


def apq(document: str, *, send: bool, digest: str | None = None) -> dict[str, Any]:
    hex_id = digest or hashlib.sha256(document.encode()).hexdigest()
    body: dict[str, Any] = {"extensions": {"persistedQuery": {"version": 1, "sha256Hash": hex_id}}}
    if send:
        body["query"] = document
    return body


async def post(gw: GatewayClient, body: dict[str, Any]) -> httpx.Response:
    return await gw.http.post("/graphql", json=body)


def code(response: httpx.Response) -> str:
    found: str = response.json()["errors"][0]["extensions"]["code"]
    return found


@pytest.mark.parametrize("mode", ["off", "allow"])
async def test_an_unknown_hash_falls_back_and_is_then_enough(
    mode: str, sim_transport: httpx.AsyncBaseTransport, clock: FakeClock, sim: Simulator
) -> None:
    settings = dataclasses.replace(demo_settings(), documents=TrustedDocumentsSettings(mode=mode))
    async with running_gateway(settings, sim_transport, clock) as gw:
        unknown = await post(gw, apq(QUERY, send=False))
        registered = await post(gw, apq(QUERY, send=True))
        known = await post(gw, apq(QUERY, send=False))
        over_get = await gw.http.get(
            "/graphql", params={"extensions": json.dumps(apq(QUERY, send=False)["extensions"])}
        )
    assert unknown.status_code == 400
    assert unknown.json()["errors"][0]["message"] == "PersistedQueryNotFound"
    assert code(unknown) == "PERSISTED_QUERY_NOT_FOUND"
    for answer in (registered, known, over_get):
        assert answer.status_code == 200, answer.text
        assert answer.json()["data"]["balances"]["complete"] is True


async def test_a_wrong_hash_or_an_invalid_document_registers_nothing(gw: GatewayClient) -> None:
    invalid = "{ balances { nope } }"
    mismatch = await post(gw, apq(QUERY, send=True, digest="0" * 64))
    after_mismatch = await post(gw, apq(QUERY, send=False, digest="0" * 64))
    refused = await post(gw, apq(invalid, send=True))
    after_invalid = await post(gw, apq(invalid, send=False))
    assert mismatch.status_code == 400 and "does not match" in mismatch.text
    assert code(after_mismatch) == "PERSISTED_QUERY_NOT_FOUND"
    assert code(refused) == "VALIDATION"  # answered with its errors, as any document is
    assert code(after_invalid) == "PERSISTED_QUERY_NOT_FOUND"  # and kept nowhere


async def test_enforce_registers_nothing(
    sim_transport: httpx.AsyncBaseTransport, clock: FakeClock
) -> None:
    documents = TrustedDocumentsSettings(mode="enforce")
    settings = dataclasses.replace(demo_settings(), documents=documents)
    async with running_gateway(settings, sim_transport, clock) as gw:
        sent = await post(gw, apq(QUERY, send=True))
        alone = await post(gw, apq(QUERY, send=False))
    assert code(sent) == code(alone) == "DOCUMENT_NOT_FOUND"


async def test_replicas_sharing_redis_share_what_was_registered(
    sim_transport: httpx.AsyncBaseTransport, clock: FakeClock, redis_url: str, namespace: str
) -> None:
    settings = with_cache(demo_settings(), redis_url, namespace)
    async with (
        running_gateway(settings, sim_transport, clock) as one,
        running_gateway(settings, sim_transport, clock) as two,
    ):
        registered = await post(one, apq(QUERY, send=True))
        elsewhere = await post(two, apq(QUERY, send=False))
    assert registered.status_code == elsewhere.status_code == 200
    assert elsewhere.json()["data"]["balances"]["complete"] is True


async def test_the_in_memory_store_keeps_only_the_most_recent_documents(
    monkeypatch: pytest.MonkeyPatch, gw: GatewayClient
) -> None:
    """Without Redis, registered documents live in a bounded map of the process: a client
    cannot grow it without end; the oldest unused one goes first."""
    from gateway.server import persisted_queries

    monkeypatch.setattr(persisted_queries, "MAX_LOCAL_DOCUMENTS", 3)
    documents = [f"query Q{i} {{ __typename }}" for i in range(5)]
    for document in documents:
        assert (await post(gw, apq(document, send=True))).status_code == 200
    kept = [(await post(gw, apq(d, send=False))).status_code for d in documents]
    assert kept == [400, 400, 200, 200, 200]
