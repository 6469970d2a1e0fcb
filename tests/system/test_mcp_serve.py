"""`/mcp` as `make run` serves it: the real `serve` of the demo config (its embedded
simulator, uvloop, the development profile), reached by the SDK's client over HTTP — every
demo tool listed, called, and answering what `/graphql` answers for its document; the
top-up posted to the provider once (by the tool; `/graphql` replays it)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

from tests.server.test_mcp import CALLS, contract
from tests.system.processes import demo_served


def test_the_demo_served_by_serve_answers_every_tool_as_graphql_does(tmp_path: Path) -> None:
    with demo_served(tmp_path) as demo:
        asyncio.run(
            contract(demo.url, None, moving_clock=True)
        )  # no key: the development profile's caller
        calls = httpx.get(f"{demo.sim_url}/_sim/calls", timeout=10).json()
    assert calls[f"{CALLS['TopUp']['accountId']}:topup"] == 1, calls  # posted once
    assert "Traceback" not in demo.process.output
