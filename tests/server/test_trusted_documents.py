"""Trusted documents: a manifest of the operations a frontend ships; `off`, `allow` and
`enforce` modes with a per-client override; documents named by `documentId` or Apollo's
`persistedQuery` hash; GET for trusted queries with HTTP caching that never mixes clients;
the manifest built from a folder by the CLI and checked at start."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.access import SCOPES
from gateway.config.documents import TrustedDocumentsSettings, digest
from gateway.config.security import ClientConfig
from gateway.errors import ConfigError
from gateway.server.auth import key_hash
from gateway.simulator import Simulator
from tests.helpers import (
    FULL_KEY,
    FakeClock,
    GatewayClient,
    demo_settings,
    parse_settings,
    production,
    running_gateway,
)
from tests.system.processes import CLI, completed

DASHBOARD = "query Dashboard { balances { complete } }\n"
TOP_UP = """mutation TopUp($input: TopUpInput!) { topUp(input: $input) { __typename } }
"""
TOOL_KEY = "bgw_internal-tool-key-0123456789abcdef"
ID = f"sha256:{digest(DASHBOARD)}"


def upstream_calls(sim: Simulator) -> int:
    return sum(sim.state.calls.values())


@pytest.fixture
async def gw(
    sim_transport: httpx.AsyncBaseTransport, clock: FakeClock
) -> AsyncIterator[GatewayClient]:
    documents = TrustedDocumentsSettings(
        mode="enforce", documents={digest(DASHBOARD): DASHBOARD, digest(TOP_UP): TOP_UP}
    )
    tool = ClientConfig(
        "internal-tool", key_hash(TOOL_KEY), frozenset(SCOPES), None, trusted_documents="allow"
    )
    full = ClientConfig("full", key_hash(FULL_KEY), frozenset(SCOPES), None)
    settings = dataclasses.replace(production(demo_settings(), full, tool), documents=documents)
    async with running_gateway(settings, sim_transport, clock) as gateway:
        yield gateway


async def post(gw: GatewayClient, body: dict[str, Any]) -> httpx.Response:
    return await gw.http.post("/graphql", json=body)


async def test_enforce_runs_manifest_documents_by_id_and_refuses_others_unparsed(
    gw: GatewayClient, sim: Simulator
) -> None:
    by_id = await post(gw, {"documentId": ID})
    apollo = await post(
        gw,
        {"extensions": {"persistedQuery": {"version": 1, "sha256Hash": digest(DASHBOARD)}}},
    )
    both = await post(gw, {"documentId": ID, "query": DASHBOARD})
    calls_before = upstream_calls(sim)
    arbitrary = await post(gw, {"query": "{ balances { complete } }"})
    broken = await post(gw, {"query": "{ balances {"})  # refused before anything parses it
    unknown = await post(gw, {"documentId": "sha256:" + "0" * 64})
    mismatch = await post(gw, {"documentId": ID, "query": "{ __typename }"})
    malformed = await post(gw, {"documentId": "md5:abc"})
    assert [r.status_code for r in (by_id, apollo, both)] == [200, 200, 200]
    assert by_id.json()["data"]["balances"]["complete"] is True
    assert apollo.json() == by_id.json() == both.json()
    for refused, status, code in (
        (arbitrary, 403, "DOCUMENT_NOT_TRUSTED"),
        (broken, 403, "DOCUMENT_NOT_TRUSTED"),
        (unknown, 400, "DOCUMENT_NOT_FOUND"),
        (mismatch, 400, "VALIDATION"),
        (malformed, 400, "VALIDATION"),
    ):
        assert refused.status_code == status, refused.text
        assert refused.json()["errors"][0]["extensions"]["code"] == code
    assert upstream_calls(sim) == calls_before  # no refused request reached a provider


async def test_a_client_of_its_own_mode_may_send_any_document(gw: GatewayClient) -> None:
    gw.as_key(TOOL_KEY)  # trusted_documents = "allow" for this client
    arbitrary = await post(gw, {"query": "{ balances { complete } }"})
    by_id = await post(gw, {"documentId": ID})
    assert arbitrary.status_code == by_id.status_code == 200
    assert arbitrary.json()["data"] == by_id.json()["data"]


async def test_a_trusted_query_over_get_is_cacheable_per_credential_and_mutations_are_not(
    gw: GatewayClient, clock: FakeClock
) -> None:
    """GET is off in [limits], yet a trusted query may use it: with Cache-Control a CDN
    may keep until the answer's first balance stops being fresh, and Vary on every header
    that says who asks."""
    first = await gw.http.get("/graphql", params={"documentId": ID})
    clock.advance(5)
    later = await gw.http.get("/graphql", params={"documentId": ID})
    arbitrary = await gw.http.get("/graphql", params={"query": DASHBOARD})
    mutation = await gw.http.get("/graphql", params={"documentId": f"sha256:{digest(TOP_UP)}"})
    posted = await post(gw, {"documentId": ID})
    traced = await gw.http.get(
        "/graphql", params={"documentId": ID}, headers={"x-gateway-trace": "1"}
    )
    assert traced.headers["cache-control"] == "no-store"  # a trace: kept by no cache
    assert "trace" in traced.json()["extensions"]
    assert first.status_code == 200 and first.json()["data"]["balances"]["complete"] is True
    assert first.headers["cache-control"] == "public, max-age=15"  # the demo's fresh window
    assert later.headers["cache-control"] == "public, max-age=10"
    assert first.headers["vary"] == "Authorization, X-API-Key, Accept, X-Gateway-Trace"
    assert arbitrary.status_code == 403  # enforce: only ids, over GET as over POST
    assert mutation.status_code == 405  # a mutation never over GET
    assert posted.headers["cache-control"] == "no-store"  # POST answers are never cached


async def test_off_refuses_ids_and_allow_runs_both(
    sim_transport: httpx.AsyncBaseTransport, clock: FakeClock
) -> None:
    for mode, id_status in (("off", 400), ("allow", 200)):
        documents = TrustedDocumentsSettings(mode=mode, documents={digest(DASHBOARD): DASHBOARD})
        settings = dataclasses.replace(demo_settings(), documents=documents)
        async with running_gateway(settings, sim_transport, clock) as gw:
            by_id = await post(gw, {"documentId": ID})
            arbitrary = await post(gw, {"query": DASHBOARD})
        assert by_id.status_code == id_status, (mode, by_id.text)
        assert arbitrary.status_code == 200


def with_manifest(manifest: Path, mode: str = "enforce") -> dict[str, Any]:
    account = {"provider": "muda", "base_url": "https://x", "api_key": "k", "secret_key": "s"}
    return {
        "server": {"profile": "development"},
        "accounts": {"muda-ug": account},
        "trusted_documents": {"mode": mode, "manifest": str(manifest)},
    }


def test_the_cli_builds_a_manifest_the_gateway_loads_and_refuses_a_wrong_one(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "frontend"
    (folder / "dashboard").mkdir(parents=True)
    (folder / "dashboard" / "balances.graphql").write_text(DASHBOARD)
    (folder / "top-up.graphql").write_text(TOP_UP)
    manifest = tmp_path / "trusted-documents.json"
    built = completed([str(CLI), "documents", "manifest", str(folder), "--output", str(manifest)])
    assert built.returncode == 0, built.stderr
    assert ID in built.stdout and "dashboard/balances.graphql" in built.stdout
    loaded = parse_settings(with_manifest(manifest), {}, tmp_path).documents
    assert loaded.mode == "enforce"
    assert dict(loaded.documents) == {digest(DASHBOARD): DASHBOARD, digest(TOP_UP): TOP_UP}

    apollo = tmp_path / "apollo.json"
    operations = [
        {"id": digest(DASHBOARD), "name": "Dashboard", "type": "query", "body": DASHBOARD}
    ]
    apollo.write_text(
        json.dumps(
            {"format": "apollo-persisted-query-manifest", "version": 1, "operations": operations}
        )
    )
    assert parse_settings(with_manifest(apollo), {}, tmp_path).documents.documents

    tampered = tmp_path / "tampered.json"
    tampered.write_text(json.dumps({digest(DASHBOARD): DASHBOARD.replace("complete", "x")}))
    with pytest.raises(ConfigError) as raised:
        parse_settings(with_manifest(tampered), {}, tmp_path)
    assert "not the SHA-256 of its document" in str(raised.value.problems)
    with pytest.raises(ConfigError):
        parse_settings(with_manifest(tmp_path / "missing.json"), {}, tmp_path)

    (folder / "broken.graphql").write_text("{ nope }\n")
    refused = completed([str(CLI), "documents", "manifest", str(folder), "--output", str(manifest)])
    assert refused.returncode == 2
    assert "broken.graphql: Cannot query field 'nope'" in refused.stderr
