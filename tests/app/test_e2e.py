"""End to end: the real app served by uvicorn, over real HTTP, to the simulator served by
uvicorn on 127.0.0.1, with the production transport (httpx + aiohttp)."""

from __future__ import annotations

import dataclasses
import json

import httpx

from gateway.app import create_app
from gateway.simulator import create_simulator
from tests.helpers import demo_settings, refuse_float, serving

QUERY = """{ balances { complete results { __typename
  ... on AccountBalance { account { id } balances { id total { amount currency } } }
  ... on ProviderFailure { account { id } code retryable retryAfterSeconds } } } }"""


async def test_real_http_one_account_failing_while_the_others_return() -> None:
    simulator = create_simulator()
    async with serving(simulator.app) as sim_url:
        settings = demo_settings()
        accounts = {
            k: dataclasses.replace(a, base_url=a.base_url.replace("http://127.0.0.1:8001", sim_url))
            for k, a in settings.accounts.items()
        }
        gateway_app = create_app(dataclasses.replace(settings, accounts=accounts))
        async with serving(gateway_app) as gateway_url, httpx.AsyncClient() as client:
            # Faults are switched over the simulator's own HTTP control route.
            put = await client.put(
                f"{sim_url}/_sim/faults/muda-ug", json={"status": 429, "retry_after": "30"}
            )
            assert put.status_code == 200
            health = await client.get(f"{gateway_url}/healthz")
            response = await client.post(f"{gateway_url}/graphql", json={"query": QUERY})
            calls = (await client.get(f"{sim_url}/_sim/calls")).json()
    assert health.status_code == 200
    assert response.status_code == 200
    report = json.loads(response.text, parse_float=refuse_float)["data"]["balances"]
    results = {r["account"]["id"]: r for r in report["results"]}
    assert report["complete"] is False
    assert results["muda-ug"] == {
        "__typename": "ProviderFailure",
        "account": {"id": "muda-ug"},
        "code": "UPSTREAM_RATE_LIMITED",
        "retryable": True,
        "retryAfterSeconds": 30,
    }
    for account_id in ("ourvoice-sn", "ourvoice-ci", "magma", "paymob-eg"):
        assert results[account_id]["__typename"] == "AccountBalance"
    assert results["ourvoice-sn"]["balances"][0]["total"] == {"amount": "50000", "currency": "XOF"}
    assert calls["muda-ug:token"] == 1
