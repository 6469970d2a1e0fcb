"""The simulator's control routes refuse mistakes instead of breaking the fake."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from gateway.registry import PROVIDERS
from gateway.simulator import Simulator
from gateway.simulator.loading import fake_spec
from gateway.simulator.state import SWITCHES
from tests.helpers import ourvoice_fake


@pytest.fixture
async def control(sim: Simulator) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=sim.app), base_url="http://sim"
    ) as client:
        yield client


async def magma_balance(control: httpx.AsyncClient) -> int:
    response = await control.get(
        "/magma/v1/misc/balance", headers={"authorization": "Bearer demo-magma-private-key"}
    )
    return response.status_code


async def test_a_fault_for_an_unknown_account_is_404_listing_the_accounts(
    control: httpx.AsyncClient,
) -> None:
    response = await control.put("/_sim/faults/magma-typo", json={"status": 503})
    assert response.status_code == 404
    # Every fake's seed tenants, from the registry (a new provider's too), sorted.
    seeded = sorted(t.name for kind in PROVIDERS for t in fake_spec(kind).tenants)
    assert response.json()["accounts"] == seeded
    assert {"magma", "muda-ug", "ourvoice-ci", "ourvoice-sn", "paymob-eg"} <= set(seeded)
    assert (await control.delete("/_sim/faults/nope")).status_code == 404


@pytest.mark.parametrize(
    "body",
    [
        {"status": "503"},  # a string: accepted before, it broke every later call
        {"status": 5030},
        {"latency_seconds": "2"},
        {"latency_seconds": -1},
        {"malformed": "yes"},
        {"retry_after": 30},
        {"statuss": 503},
        ["status", 503],
    ],
)
async def test_a_wrong_switch_or_type_is_400_listing_every_switch(
    control: httpx.AsyncClient, sim: Simulator, body: object
) -> None:
    response = await control.put("/_sim/faults/magma", json=body)
    assert response.status_code == 400
    assert response.json()["switches"] == SWITCHES
    assert response.json()["error"]
    assert "magma" not in sim.state.faults
    assert await magma_balance(control) == 200  # the fake still works


async def test_a_valid_switch_applies_and_clears(control: httpx.AsyncClient) -> None:
    set_ = await control.put("/_sim/faults/magma", json={"status": 503, "retry_after": None})
    assert set_.status_code == 200 and set_.json()["status"] == 503
    assert await magma_balance(control) == 503
    assert (await control.delete("/_sim/faults/magma")).status_code == 204
    assert await magma_balance(control) == 200


async def test_top_up_faults_over_http(control: httpx.AsyncClient, sim: Simulator) -> None:
    assert (await control.put("/_sim/topup-faults/magma", json={"mode": "x"})).status_code == 404
    wrong = await control.put("/_sim/topup-faults/ourvoice-sn", json={"mode": "nope"})
    assert wrong.status_code == 400 and "503-after-commit" in wrong.json()["modes"]
    ok = await control.put("/_sim/topup-faults/ourvoice-sn", json={"mode": "503-after-commit"})
    assert ok.status_code == 200
    assert ourvoice_fake(sim).topup_faults == {"ourvoice-sn": "503-after-commit"}
    assert (await control.delete("/_sim/topup-faults/ourvoice-sn")).status_code == 204
    assert ourvoice_fake(sim).topup_faults == {}


async def test_the_root_lists_the_providers_accounts_and_control_routes(
    control: httpx.AsyncClient,
) -> None:
    index = (await control.get("/")).json()
    assert index["providers"]["ourvoice"] == {
        "base_url": "/ourvoice",
        "accounts": ["ourvoice-ci", "ourvoice-sn"],
    }
    assert set(index["providers"]) == set(PROVIDERS)  # every registered fake, a new one's too
    assert {"ourvoice", "magma_onepay", "muda", "paymob_bills"} <= set(index["providers"])
    assert "PUT /_sim/faults/{account}" in index["control"]
