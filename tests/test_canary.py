"""Canary run: every provider credential and client key is a unique canary; the end-to-end
scenarios run with every logger at DEBUG; no canary may appear in any response or log."""

from __future__ import annotations

import dataclasses
import logging
import uuid

import httpx
import pytest

from gateway.app import create_app
from gateway.config.accounts import Secret
from gateway.config.security import ClientConfig
from gateway.log_context import Redacting
from gateway.server.auth import key_hash
from gateway.simulator import Tenants, create_simulator, seed
from gateway.simulator.state import SimState
from tests.helpers import FakeClock, GatewayClient, demo_settings, no_sleep, production, serving


def canary() -> str:
    return f"CANARY{uuid.uuid4().hex}"


CANARIES: dict[str, str] = {}


def remember(name: str) -> str:
    CANARIES[name] = canary()
    return CANARIES[name]


def canary_world() -> tuple[Tenants, object, str]:
    ov = tuple(dataclasses.replace(t, api_key=remember(f"{t.name}.api_key")) for t in seed.OURVOICE)
    mg = tuple(
        dataclasses.replace(
            t, private_key=remember("magma.private"), secret_key=remember("magma.secret")
        )
        for t in seed.MAGMA
    )
    md = tuple(
        dataclasses.replace(t, api_key=remember("muda.api"), secret_key=remember("muda.secret"))
        for t in seed.MUDA
    )
    pm = tuple(
        dataclasses.replace(
            t, public_key=remember("paymob.public"), secret_key=remember("paymob.secret")
        )
        for t in seed.PAYMOB
    )
    settings = demo_settings()
    credentials = {
        "ourvoice-sn": {"api_key": CANARIES["ourvoice-sn.api_key"]},
        "ourvoice-ci": {"api_key": CANARIES["ourvoice-ci.api_key"]},
        "magma": {"private_key": CANARIES["magma.private"], "secret_key": CANARIES["magma.secret"]},
        "muda-ug": {"api_key": CANARIES["muda.api"], "secret_key": CANARIES["muda.secret"]},
        "paymob-eg": {
            "public_key": CANARIES["paymob.public"],
            "secret_key": CANARIES["paymob.secret"],
        },
    }
    accounts = {
        k: dataclasses.replace(a, credentials={n: Secret(v) for n, v in credentials[k].items()})
        for k, a in settings.accounts.items()
    }
    key = remember("client.key")
    client = ClientConfig("ops", key_hash(key), frozenset({"balances:read", "metrics:read"}), None)
    settings = production(dataclasses.replace(settings, accounts=accounts), client)
    return Tenants(ov, mg, md, pm), settings, key


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
        sim.muda_tokens.revoke("muda-ug")
        clock.advance(400)
        texts.append((await gw.post(SCENARIO[0])).text)
        texts.append((await gw.http.get("/metrics")).text)
        gw.as_key(key[:-1] + "x")  # a near miss of a real key
        texts.append((await gw.post(SCENARIO[0])).text)
        gw.as_key(CANARIES["magma.private"])  # a provider secret tried as a client key
        texts.append((await gw.post(SCENARIO[0])).text)

    if transport == "in-process":
        app = create_app(
            settings,
            transport=httpx.ASGITransport(app=sim.app),
            clock=clock,  # type: ignore[arg-type]
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
            }  # type: ignore[attr-defined]
            app = create_app(
                dataclasses.replace(settings, accounts=accounts), clock=clock, sleep=no_sleep
            )  # type: ignore[type-var]
            async with serving(app) as url, httpx.AsyncClient(base_url=url) as http:
                await scenario(GatewayClient(http, app).as_key(key))

    rendered = Redacting()  # what the CLI's handler writes: the lines an operator reads
    logged = "\n".join(rendered.format(r) for r in caplog.records)
    assert len(caplog.records) > 20  # DEBUG really was on
    for name, value in CANARIES.items():
        assert value not in logged, f"{name} leaked into a log line"
        for text in texts:
            assert value not in text, f"{name} leaked into a response"
