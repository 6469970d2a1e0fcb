"""`serve --workers 2` on the real Redis, as OS processes: two workers on one port share
the cache and its single flight (100 cold concurrent queries make one upstream call per
account) and one rate-limit bucket per client."""

from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path

import httpx

from tests.helpers import free_port
from tests.system.processes import (
    KEY,
    SECRETS,
    TIGHT_CLIENT,
    TIGHT_KEY,
    Process,
    clean_env,
    concurrently,
    gateway_and_simulator,
    production_config,
)

TIGHT = '[logging]\nformat = "json"\n' + TIGHT_CLIENT
QUERY = "{ balances { complete } }"


def burst(url: str, key: str, count: int) -> list[httpx.Response]:
    auth = {"authorization": f"Bearer {key}"}
    return asyncio.run(concurrently(url, count, lambda i: {"query": QUERY}, auth))


def test_two_workers_share_the_cache_single_flight_and_rate_limits(
    tmp_path: Path, redis_url: str, namespace: str
) -> None:
    sim_port, gw_port = free_port(), free_port()
    sim_url, gw_url = f"http://127.0.0.1:{sim_port}", f"http://127.0.0.1:{gw_port}"
    config = tmp_path / "gateway.toml"
    config.write_text(
        production_config(
            sim_url,
            tmp_path / "journal.db",
            TIGHT,
            # the bursts must all be admitted: the fixed ceiling (256) holds them on a
            # machine busy with other work, where the load-adaptive limit would shed
            server='admission = "fixed"',
            cache=redis_url,
            namespace=namespace,
        )
    )
    env = clean_env(**SECRETS)
    logs = tmp_path / "logs"

    def banner(gateway: Process) -> None:
        # JSON logs (TIGHT's [logging]): the banner is one event, on stderr with the rest
        def ready() -> bool:
            return '"event":"ready"' in gateway.stderr and '"workers":2' in gateway.stderr

        gateway.wait_for(ready, "the ready event")

    with gateway_and_simulator(
        config, (sim_port, gw_port), logs, env, serve=["--workers", "2"], ready=banner
    ) as (sim, gateway):
        cold = burst(gw_url, KEY, 100)
        tight = burst(gw_url, TIGHT_KEY, 30)
        calls = httpx.get(f"{sim_url}/_sim/calls", timeout=10).json()
        status = gateway.stop(signal.SIGTERM)
        sim.stop(signal.SIGTERM)

    assert status == 0
    assert {r.status_code for r in cold} == {200}
    assert all(r.json()["data"]["balances"]["complete"] for r in cold)
    balance_calls = {k: v for k, v in calls.items() if k.endswith(":balance")}
    assert balance_calls == {
        "ourvoice-sn:balance": 1,
        "magma:balance": 1,
        "muda-ug:balance": 1,
        "paymob-eg:balance": 1,
    }
    # One bucket for the client across both workers: its burst of 10, not 10 per worker.
    assert sorted(r.status_code for r in tight) == [200] * 10 + [429] * 20

    access = [
        json.loads(line)
        for line in gateway.stderr.splitlines()
        if '"logger":"gateway.access"' in line
    ]
    assert len(access) == 130
    assert len({entry["pid"] for entry in access}) == 2  # both workers took connections
