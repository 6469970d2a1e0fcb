"""Canary run: every provider credential and client key is a unique canary; the end-to-end
scenarios run with every logger at DEBUG; no canary may appear in any response or log."""

from __future__ import annotations

import dataclasses
import logging
import uuid
from typing import Any

import httpx
import pytest

from gateway.app import create_app
from gateway.config.secret import Secret
from gateway.config.security import ClientConfig
from gateway.config.settings import Settings
from gateway.observability.log_format import JsonFormatter, TextFormatter
from gateway.registry import PROVIDERS
from gateway.server.auth import key_hash
from gateway.simulator import create_simulator
from gateway.simulator.loading import fake_spec
from gateway.simulator.state import SimState
from tests.helpers import (
    FakeClock,
    GatewayClient,
    demo_settings,
    muda_fake,
    no_sleep,
    production,
    serving,
)


def canary() -> str:
    return f"CANARY{uuid.uuid4().hex}"


CANARIES: dict[str, str] = {}


def remember(name: str) -> str:
    CANARIES[name] = canary()
    return CANARIES[name]


def canary_world() -> tuple[dict[str, tuple[Any, ...]], Settings, str]:
    """Every fake's tenants with every credential replaced by a unique canary, and the
    demo's accounts holding those canaries (in the production profile)."""
    tenants: dict[str, tuple[Any, ...]] = {}
    credentials: dict[str, dict[str, str]] = {}
    for kind in PROVIDERS:
        spec = fake_spec(kind)
        changed = []
        for tenant in spec.tenants:
            secrets = set(spec.account(tenant).values())
            changes = {
                f.name: remember(f"{tenant.name}.{f.name}")
                for f in dataclasses.fields(tenant)
                if isinstance(getattr(tenant, f.name), str) and getattr(tenant, f.name) in secrets
            }
            changed.append(dataclasses.replace(tenant, **changes))
            credentials[tenant.name] = spec.account(changed[-1])
        tenants[kind] = tuple(changed)
    settings = demo_settings()
    accounts = {
        k: dataclasses.replace(a, credentials={n: Secret(v) for n, v in credentials[k].items()})
        for k, a in settings.accounts.items()
    }
    key = remember("client.key")
    client = ClientConfig("ops", key_hash(key), frozenset({"balances:read", "metrics:read"}), None)
    settings = production(dataclasses.replace(settings, accounts=accounts), client)
    return tenants, settings, key


SCENARIO = [
    "{ balances { complete totals { currency total { amount } } results { __typename "
    "... on AccountBalance { balances { id total { amount } } } "
    "... on ProviderFailure { code message } } } }",
    '{ balances(accountIds: ["magma", "nope"]) { complete } }',
    "{ nope }",
    "{ balances { ",
]


@pytest.mark.parametrize("transport", ["in-process", "real-http"])
async def test_no_canary_in_any_response_or_log_line(
    transport: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    for name in ("httpx", "httpcore", "aiohttp", "uvicorn", "gateway", "asyncio"):
        logging.getLogger(name).setLevel(logging.DEBUG)
    tenants, settings, key = canary_world()
    clock = FakeClock()
    sim = create_simulator(SimState(clock=clock), tenants)
    texts: list[str] = []

    async def scenario(gw: GatewayClient) -> None:
        for query in SCENARIO:
            texts.append((await gw.post(query)).text)
        for fault in ({"status": 503}, {"status": 429, "retry_after": "3"}, {"malformed": True}):
            for tenant in ("ourvoice-sn", "magma", "muda-ug", "paymob-eg"):
                sim.state.set_faults(tenant, **fault)
            clock.advance(400)
            texts.append((await gw.post(SCENARIO[0])).text)
        sim.state.clear_faults()
        muda_fake(sim).tokens.revoke("muda-ug")
        clock.advance(400)
        texts.append((await gw.post(SCENARIO[0])).text)
        texts.append((await gw.http.get("/metrics")).text)
        gw.as_key(key[:-1] + "x")  # a near miss of a real key
        texts.append((await gw.post(SCENARIO[0])).text)
        gw.as_key(CANARIES["magma.private_key"])  # a provider secret tried as a client key
        texts.append((await gw.post(SCENARIO[0])).text)

    if transport == "in-process":
        app = create_app(
            settings,
            transport=httpx.ASGITransport(app=sim.app),
            clock=clock,
            sleep=no_sleep,
        )
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://gateway"
            ) as http,
        ):
            await scenario(GatewayClient(http, app).as_key(key))
    else:
        async with serving(sim.app) as sim_url:
            accounts = {
                k: dataclasses.replace(
                    a, base_url=a.base_url.replace("http://127.0.0.1:8001", sim_url)
                )
                for k, a in settings.accounts.items()
            }
            app = create_app(
                dataclasses.replace(settings, accounts=accounts), clock=clock, sleep=no_sleep
            )
            async with serving(app) as url, httpx.AsyncClient(base_url=url) as http:
                await scenario(GatewayClient(http, app).as_key(key))

    # What the CLI's handler writes, in either format: the lines an operator reads.
    logged = "\n".join(
        formatter.format(r)
        for formatter in (TextFormatter(), JsonFormatter())
        for r in caplog.records
    )
    assert len(caplog.records) > 20  # DEBUG really was on
    for name, value in CANARIES.items():
        assert value not in logged, f"{name} leaked into a log line"
        for text in texts:
            assert value not in text, f"{name} leaked into a response"
