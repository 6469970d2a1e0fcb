"""`bench/run.py`'s MCP case, run small and untimed: the gateway it configures serves the
tool it calls, and both of its requests answer what the case asserts of them. (The
measurement is `bench/run.py --only mcp`, run on purpose; no test asserts a timing.)"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import tomllib
from pathlib import Path
from types import ModuleType

import pytest

from gateway.app import create_app
from gateway.simulator import create_simulator
from gateway.simulator.state import SimState
from tests.helpers import ROOT, FakeClock, parse_settings, serving


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_run_mcp", ROOT / "bench" / "run.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def test_the_mcp_case_calls_its_tool_and_graphql_runs_the_same_document(
    bench: ModuleType, tmp_path: Path
) -> None:
    clock = FakeClock()
    async with serving(create_simulator(SimState(clock=clock)).app) as sim_url:
        text = bench.mcp_config(sim_url).replace(str(bench.JOURNAL), f"{tmp_path}/j.db")
        settings = parse_settings(tomllib.loads(text), env=bench.SECRETS)
        assert settings.documents.mode == "allow" and not settings.cache.response_cache
        manifest = json.loads((ROOT / "deploy" / "demo-documents.json").read_text())
        (document_id,) = [i for i, t in manifest.items() if f"query {bench.MCP_TOOL} " in t]
        async with serving(create_app(settings, clock=clock)) as url:
            times = await asyncio.to_thread(bench.mcp_latencies, url, document_id, 3)
    assert {path: len(found) for path, found in times.items()} == {"graphql": 3, "mcp": 3}
