"""SIGTERM on the real `serve` process: readiness turns 503 at once, requests are still
served through the drain window, then the listener closes; a slow query and a top-up in
flight both finish and are answered, the top-up recorded once; the process exits 0."""

from __future__ import annotations

import asyncio
import signal
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from gateway.services.journal import open_journal
from tests.helpers import demo_text, free_port
from tests.system.processes import (
    CLI,
    KEY,
    SECRETS,
    clean_env,
    gateway_and_simulator,
    production_config,
    started,
)

TOP_UP = """mutation { topUp(input: {accountId: "ourvoice-sn", amount: "2500",
  paymentMethod: "MTN MOMO", paymentReference: "PAY-DRAIN", idempotencyKey: "drain-1"}) {
  __typename ... on TopUpSucceeded { transaction { id } } } }"""
SLOW = '{ balances(accountIds: ["magma"]) { complete } }'
FAST = '{ balances(accountIds: ["paymob-eg"]) { complete } }'
DRAIN, LATENCY = 3, 6  # seconds: the slow calls outlast the drain window


def until(condition: Any, what: str, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"no {what} within {seconds} s")


def test_sigterm_drains_then_finishes_what_is_in_flight_and_exits_0(tmp_path: Path) -> None:
    sim_port, gw_port = free_port(), free_port()
    sim_url, gw_url = f"http://127.0.0.1:{sim_port}", f"http://127.0.0.1:{gw_port}"
    journal = tmp_path / "journal.db"
    config = tmp_path / "gateway.toml"
    config.write_text(
        production_config(
            sim_url,
            journal,
            server=f"drain_seconds = {DRAIN}\nshutdown_timeout_seconds = 15",
        )
    )
    env = clean_env(**SECRETS)
    logs = tmp_path / "logs"
    auth = {"authorization": f"Bearer {KEY}"}
    answers: dict[str, httpx.Response] = {}

    def ask(name: str, query: str) -> None:
        with httpx.Client(timeout=60) as http:
            answers[name] = http.post(f"{gw_url}/graphql", json={"query": query}, headers=auth)

    with gateway_and_simulator(config, (sim_port, gw_port), logs, env) as (sim, gateway):
        with httpx.Client(base_url=sim_url, timeout=10) as control:
            for tenant in ("magma", "ourvoice-sn"):
                control.put(f"/_sim/faults/{tenant}", json={"latency_seconds": LATENCY})

            def calls() -> dict[str, int]:
                counted: dict[str, int] = control.get("/_sim/calls").json()
                return counted

            threads = [
                threading.Thread(target=ask, args=("slow", SLOW)),
                threading.Thread(target=ask, args=("topup", TOP_UP)),
            ]
            for thread in threads:
                thread.start()
            until(
                lambda: calls().get("magma:balance") and calls().get("ourvoice-sn:topup"),
                "slow calls in flight upstream",
            )
            gateway.popen.send_signal(signal.SIGTERM)

            with httpx.Client(base_url=gw_url, timeout=10) as http:
                until(lambda: http.get("/readyz").status_code == 503, "readiness 503")
                draining = http.get("/readyz").json()
                during = http.post("/graphql", json={"query": FAST}, headers=auth)

            def refused() -> bool:
                try:
                    httpx.get(f"{gw_url}/healthz", timeout=2)
                except httpx.ConnectError:
                    return True
                return False

            until(refused, "the listener closed after the drain window")
            in_flight_then = "slow" not in answers or "topup" not in answers
            for thread in threads:
                thread.join(60)
            status = gateway.popen.wait(30)  # on its own: no second signal
            topup_posts = calls().get("ourvoice-sn:topup")
        sim.stop(signal.SIGTERM)

    assert draining == {"status": "draining"}
    assert during.status_code == 200  # still served while draining
    assert during.json()["data"]["balances"]["complete"] is True
    assert in_flight_then  # the slow requests were still running when the listener closed
    assert answers["slow"].status_code == 200
    assert answers["slow"].json()["data"]["balances"]["complete"] is True
    assert answers["topup"].json()["data"]["topUp"]["__typename"] == "TopUpSucceeded"
    assert status == 0
    assert "draining: /readyz answers 503" in gateway.output
    assert "Traceback" not in gateway.output
    assert topup_posts == 1  # sent once

    async def recorded() -> list[str]:
        store = open_journal(f"sqlite:///{journal}")
        try:
            return [r.state for r in await store.records()]
        finally:
            await store.close()

    assert asyncio.run(recorded()) == ["succeeded"]  # its outcome, recorded before exit


def test_sigterm_under_the_demo_keeps_its_simulator_serving_through_the_drain(
    tmp_path: Path,
) -> None:
    """`serve --simulator-port` (what `make run` starts): the embedded simulator is the
    gateway's upstreams, so it must outlive the drain, not stop at the first signal and take
    every draining answer down with it."""
    gw_port, sim_port = free_port(), free_port()
    gw_url = f"http://127.0.0.1:{gw_port}"
    config = tmp_path / "demo.toml"
    config.write_text(demo_text().replace("[server]\n", "[server]\ndrain_seconds = 30\n", 1))
    command = [str(CLI), "serve", "--config", str(config), "--port", str(gw_port)]
    with started([*command, "--simulator-port", str(sim_port)], tmp_path, env=clean_env()) as gw:
        gw.wait_http(f"{gw_url}/readyz")
        gw.popen.send_signal(signal.SIGTERM)
        with httpx.Client(base_url=gw_url, timeout=10) as http:
            until(lambda: http.get("/readyz").status_code == 503, "readiness 503")
            during = http.post("/graphql", json={"query": FAST})
        gw.popen.send_signal(signal.SIGTERM)  # a second signal ends the drain at once
        status = gw.popen.wait(30)
    assert during.json()["data"]["balances"]["complete"] is True  # its upstream still there
    assert status == 0
