"""`bench/hive.py`, the side-by-side case against Hive Gateway, its pure parts: the pinned
packages, the Mesh and Hive configurations and the aliased query it writes, the answer
checks, the interleaving, the pairs' ratios and the report. (The run itself is
`bench/run.py --only hive`, never a test: it installs npm packages and takes minutes.)"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from graphql import parse

from tests.bench.scripts import bench_script
from tests.helpers import load_settings


@pytest.fixture(scope="module")
def hive() -> ModuleType:
    return bench_script("hive")


def test_the_packages_are_pinned_to_exact_versions(hive: ModuleType) -> None:
    manifest = json.loads(hive.package_json())
    assert manifest["dependencies"]["@graphql-hive/gateway"] == "2.15.1"
    for name, version in manifest["dependencies"].items():
        assert re.fullmatch(r"\d+\.\d+\.\d+", version), (name, version)
    assert manifest["private"] is True


def test_one_hive_request_asks_for_n_distinct_accounts(hive: ModuleType) -> None:
    document = parse(hive.hive_query(4))
    fields = document.definitions[0].selection_set.selections  # type: ignore[attr-defined]
    assert [f.alias.value for f in fields] == ["a0", "a1", "a2", "a3"]
    accounts = {f.arguments[0].value.value for f in fields}
    assert len(accounts) == 4  # distinct arguments: no deduplication of identical calls
    assert len(parse(hive.hive_query(32)).definitions[0].selection_set.selections) == 32  # type: ignore[attr-defined]


def test_the_mesh_source_is_the_fakes_our_voice_route(hive: ModuleType) -> None:
    text = hive.mesh_config("http://127.0.0.1:9000")
    source = json.loads(re.search(r"loadJSONSchemaSubgraph\('OurVoice', (.*)\) \}\]", text)[1])  # type: ignore[index]
    assert source["endpoint"] == "http://127.0.0.1:9000/ourvoice"
    assert source["operationHeaders"] == {"Authorization": f"Bearer {hive.OURVOICE_KEY}"}
    (operation,) = source["operations"]
    assert (operation["path"], operation["method"]) == ("/v1/current/balance", "GET")
    assert operation["queryParamArgMap"] == {"account": "account"}


def test_hive_caches_responses_only_in_the_cached_case(hive: ModuleType) -> None:
    cached, uncached = hive.gateway_config(True), hive.gateway_config(False)
    assert "responseCaching: { session: () => null, ttl: 15000 }" in cached
    assert "responseCaching" not in uncached
    assert "supergraph: './supergraph.graphql'" in uncached


def test_the_written_javascript_parses(
    hive: ModuleType, node: tuple[str, str], tmp_path: Path
) -> None:
    for name, text in (
        ("mesh.config.mjs", hive.mesh_config("http://127.0.0.1:9000")),
        ("gateway.config.mjs", hive.gateway_config(True)),
        ("uncached.mjs", hive.gateway_config(False)),
    ):
        (tmp_path / name).write_text(text)
        subprocess.run([node[0], "--check", str(tmp_path / name)], check=True)


def test_our_side_is_n_our_voice_accounts_with_the_same_key(
    hive: ModuleType, tmp_path: Path
) -> None:
    text = hive.ours_config("http://127.0.0.1:9000", 4, cached=False)
    assert text.count('provider = "ourvoice"') == 4
    assert "env:BENCH_OURVOICE_KEY" not in text
    assert "fresh_seconds = 0\nresponse_cache = false" in text
    assert "fresh_seconds = 15\nresponse_cache = true" in hive.ours_config("http://x", 4, True)
    (tmp_path / "bench.toml").write_text(text)
    env = {"BENCH_CURSOR_SECRET": "c" * 32, "BENCH_OURVOICE_SLOW_KEY": "demo-ourvoice-ci-key"}
    settings = load_settings(str(tmp_path / "bench.toml"), env=env)
    assert len(settings.accounts) == 4


def test_answers_are_checked_beyond_their_status(hive: ModuleType) -> None:
    balance = {"data": {"success": True, "message": "ok", "data": {"balance": 1}}}
    good = json.dumps({"data": {"a0": balance, "a1": balance}}).encode()
    assert hive.hive_answer_problem(good, 2) is None
    assert "a1" in hive.hive_answer_problem(json.dumps({"data": {"a0": balance}}).encode(), 2)
    failed = {"data": {"a0": None}, "errors": [{"message": "upstream"}]}
    assert "errors" in hive.hive_answer_problem(json.dumps(failed).encode(), 1)
    assert "not JSON" in hive.hive_answer_problem(b"<html>", 1)
    report = {"complete": True, "results": [{}, {}]}
    assert hive.ours_answer_problem(json.dumps({"data": {"balances": report}}).encode(), 2) is None
    partial = {"complete": False, "results": [{}, {}]}
    assert "incomplete" in hive.ours_answer_problem(
        json.dumps({"data": {"balances": partial}}).encode(), 2
    )


def test_runs_alternate_which_side_goes_first(hive: ModuleType) -> None:
    assert list(hive.interleaved(4)) == [
        ("ours", "hive"),
        ("hive", "ours"),
        ("ours", "hive"),
        ("hive", "ours"),
    ]


def pair(
    ours_rps: float, hive_rps: float, ours_cpu: float, hive_cpu: float
) -> dict[str, dict[str, float]]:
    return {
        "ours": {"rps": ours_rps, "cpu_ms": ours_cpu, "calls_per_request": 4.0},
        "hive": {"rps": hive_rps, "cpu_ms": hive_cpu, "calls_per_request": 0.0},
    }


def test_ratios_are_medians_of_the_pairs_ratios(hive: ModuleType) -> None:
    # A slow minute hits both sides of its pair: the pair's ratio still says 2x.
    pairs = [pair(2000, 1000, 0.2, 0.4), pair(500, 250, 0.8, 1.6), pair(3000, 1000, 0.3, 0.3)]
    result = hive.summarise(pairs)
    assert result["ours"]["rps"] == 2000 and result["hive"]["rps"] == 1000
    assert result["ratio"]["rps"] == 2.0  # median of 2, 2, 3
    assert result["ratio"]["cpu_ms"] == 0.5  # median of 0.5, 0.5, 1
    assert "calls_per_request" not in result["ratio"]  # Hive's zero: no ratio
    assert result["pairs"] == 3


FIGURES = {
    "rps": 100.0,
    "p50_ms": 55.0,
    "p99_ms": 60.0,
    "cpu_ms": 5.0,
    "cpu_share": 0.5,
    "calls_per_request": 4.0,
    "upstream_cpu_share": 0.01,
}


def case(rps_ratio: float, cpu_ratio: float) -> dict[str, Any]:
    ratio = {"rps": rps_ratio, "p50_ms": 1.0, "p99_ms": 1.0, "cpu_ms": cpu_ratio}
    return {
        "ours": FIGURES,
        "hive": FIGURES,
        "ratio": ratio,
        "pairs": 3,
        "peak_rss_mib": {"ours": 80.0, "hive": 320.0},
    }


def test_the_report_holds_the_issues_targets_against_the_ratios(hive: ModuleType) -> None:
    results = {
        "versions": {"@graphql-hive/gateway": "2.15.1"},
        "runs": 3,
        "upstream_p50_ms": 50.0,
        "cases": {"cached 4x16": case(2.6, 0.4), "uncached 32x1": case(1.1, 0.6)},
    }
    assert [(what.split()[0], ratio, met) for what, ratio, met in hive.targets(results)] == [
        ("cached", 2.6, True),
        ("uncached", 0.6, False),
    ]
    lines = hive.report(results)
    assert "@graphql-hive/gateway 2.15.1" in lines[0]
    assert any(line.startswith("cached 4x16      ratio    2.60x") for line in lines)
    assert any(line.endswith("0.25x") for line in lines)  # peak RSS, ours / Hive
    assert lines[-2].endswith("2.60x — met")
    assert lines[-1].endswith("0.60x — NOT met")
