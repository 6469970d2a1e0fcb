"""Side by side with Hive Gateway (issue #25): `bench/run.py --only hive`.

Hive Gateway and what it needs to serve a REST endpoint as GraphQL (GraphQL Mesh's
compose CLI with the JSON Schema source, and the REST transport) are installed by npm,
by name and exact version (PACKAGES; their own dependencies as the registry held them on
NPM_BEFORE), into a temporary folder at run time: nothing of theirs is committed. Both
gateways ask the same fake upstream (bench/upstream.py) for the same Our Voice balance
(the tenant whose balance is a JSON object, after 50 ms), N times per GraphQL request:
this gateway as N Our Voice accounts in its `balances` query, Hive Gateway as N aliased
fields of one REST-backed `balance(account:)` field. Each is pinned to the gateway CPU
and measured alternately (ours, Hive, Hive, ours, …: each pair adjacent in time), with
the same wrk on the load CPU; every figure is a median and every ratio (ours / Hive) the
median of the pairs' ratios.
"""

from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx
from run import (
    BENCH_KEY,
    GATEWAY_CPU,
    QUERY,
    WRK_POST,
    Gateway,
    config,
    cpu_seconds,
    free_port,
    pinned,
    wait_http,
    wrk,
)

# The packages, exact versions. Their own dependencies are caret ranges: NPM_BEFORE makes
# npm resolve them as the registry stood the day after Hive Gateway 2.15.1 was published.
PACKAGES = {
    "@graphql-hive/gateway": "2.15.1",
    "@graphql-mesh/compose-cli": "1.8.2",
    "@omnigraph/json-schema": "0.112.4",
    "@graphql-mesh/transport-rest": "0.12.2",
}
NPM_BEFORE = "2026-09-30T00:00:00Z"
# Resolved versions worth printing beside the results (what actually ran).
REPORTED = (
    "@graphql-hive/gateway",
    "@graphql-hive/gateway-runtime",
    "@graphql-mesh/transport-rest",
    "@graphql-yoga/plugin-response-cache",
    "graphql-yoga",
    "graphql",
)
INSTALL_SECONDS = 600
# The Our Voice tenant whose `data.data` is an object ({"balance": 125750}), so that Hive
# Gateway can type it; the bench's other tenant sends it as a JSON-encoded string.
OURVOICE_KEY = "demo-ourvoice-ci-key"
OURVOICE_KEY_ENV = "env:BENCH_OURVOICE_SLOW_KEY"  # run.SECRETS: the same key, for ours
CACHE_TTL_SECONDS = 15  # both: this gateway's default freshness, Hive's response cache TTL
# (cached, accounts, connections): the reference cases; grouped by (cached,
# accounts), one pair of gateway processes per group.
CASES = (
    (True, 4, 16),
    (True, 4, 1),
    (False, 4, 1),
    (False, 4, 16),
    (False, 32, 1),
    (False, 32, 16),
)
SIDES = ("ours", "hive")
# The targets, for later: held against this run's ratios, not asserted.
TARGET_CACHED_RPS = 2.5  # cached (4 accounts, 16 connections): ours ≥ 2.5 × Hive's req/s
TARGET_UNCACHED_CPU = 0.5  # uncached, 32 accounts, 1 connection: ours ≤ 0.5 × Hive's CPU


def package_json() -> str:
    return json.dumps(
        {"name": "balance-gateway-bench-hive", "private": True, "dependencies": PACKAGES},
        indent=2,
    )


def mesh_config(upstream_url: str) -> str:
    """GraphQL Mesh compose configuration: the fake's Our Voice balance route as a
    `balance(account: String!)` query field, its answer typed by an inline JSON schema.
    `account` goes out as a query parameter, so that N aliases are N distinct calls (the
    fake answers the same bytes whatever the query string)."""
    answer = {
        "type": "object",
        "title": "OurVoiceAnswer",
        "properties": {
            "data": {
                "type": "object",
                "title": "OurVoiceEnvelope",
                "properties": {
                    "success": {"type": "boolean"},
                    "message": {"type": "string"},
                    "data": {
                        "type": "object",
                        "title": "OurVoiceBalance",
                        "properties": {"balance": {"type": "number"}},
                    },
                },
            }
        },
    }
    source = {
        "endpoint": f"{upstream_url}/ourvoice",
        "operationHeaders": {"Authorization": f"Bearer {OURVOICE_KEY}"},
        "operations": [
            {
                "type": "Query",
                "field": "balance",
                "path": "/v1/current/balance",
                "method": "GET",
                "argTypeMap": {"account": {"type": "string"}},
                "requiredArgs": ["account"],
                "queryParamArgMap": {"account": "account"},
                "responseSchema": answer,
            }
        ],
    }
    return (
        "import { defineConfig } from '@graphql-mesh/compose-cli';\n"
        "import { loadJSONSchemaSubgraph } from '@omnigraph/json-schema';\n"
        "export const composeConfig = defineConfig({\n"
        f"  subgraphs: [{{ sourceHandler: loadJSONSchemaSubgraph('OurVoice', "
        f"{json.dumps(source)}) }}],\n"
        "});\n"
    )


def gateway_config(cached: bool) -> str:
    """Hive Gateway's configuration: the composed supergraph, and for the cached case its
    response cache, shared by every caller (`session: () => null`: no authentication here
    to key on) for CACHE_TTL_SECONDS. Everything else at its defaults."""
    cache = (
        f"  responseCaching: {{ session: () => null, ttl: {CACHE_TTL_SECONDS * 1000} }},\n"
        if cached
        else ""
    )
    return f"export const gatewayConfig = {{\n  supergraph: './supergraph.graphql',\n{cache}}};\n"


HIVE_FIELDS = "data { success message data { balance } }"


def hive_query(accounts: int) -> str:
    """One request for `accounts` balances: that many aliased fields, each a REST call."""
    fields = " ".join(
        f'a{i}: balance(account: "ourvoice-{i}") {{ {HIVE_FIELDS} }}' for i in range(accounts)
    )
    return f"{{ {fields} }}"


def graphql_data(body: bytes) -> tuple[dict[str, Any], str | None]:
    """A GraphQL answer's `data` (empty when absent), and what is wrong with the answer
    as a whole (not JSON, or errors), or None."""
    try:
        answer = json.loads(body)
    except ValueError:
        return {}, f"not JSON: {body[:200]!r}"
    if answer.get("errors"):
        return {}, f"errors: {json.dumps(answer['errors'])[:300]}"
    return answer.get("data") or {}, None


def hive_answer_problem(body: bytes, accounts: int) -> str | None:
    """What is wrong with Hive Gateway's answer to hive_query(accounts), or None."""
    data, problem = graphql_data(body)
    if problem is not None:
        return problem
    for i in range(accounts):
        field = (data.get(f"a{i}") or {}).get("data") or {}
        if field.get("success") is not True or "balance" not in (field.get("data") or {}):
            return f"a{i} is not a balance: {json.dumps(data.get(f'a{i}'))[:200]}"
    return None


def ours_answer_problem(body: bytes, accounts: int) -> str | None:
    """What is wrong with this gateway's answer to QUERY over `accounts` accounts, or None."""
    data, problem = graphql_data(body)
    if problem is not None:
        return problem
    report = data.get("balances") or {}
    results = report.get("results") or []
    if report.get("complete") is not True or len(results) != accounts:
        return f"incomplete: {json.dumps(report)[:300]}"
    return None


def ours_config(upstream_url: str, accounts: int, cached: bool) -> str:
    """This gateway as the bench runs it (production profile, a client key, the rate
    limiter, the access log at the default level), with `accounts` Our Voice accounts on
    the fake and OURVOICE_KEY. Cached: default freshness and the response cache; uncached:
    `fresh_seconds = 0`, no response cache (concurrent requests still share reads in
    flight: the single flight is not a cache and cannot be turned off)."""
    text = config(
        upstream_url,
        accounts,
        CACHE_TTL_SECONDS if cached else 0,
        cached,
        providers=["ourvoice"],
    )
    return text.replace('"env:BENCH_OURVOICE_KEY"', f'"{OURVOICE_KEY_ENV}"')


def interleaved(runs: int) -> Iterator[tuple[str, str]]:
    """The order of each pair of runs: ours first, then Hive first, and so on (A B B A …),
    so that a drift of the machine over time favours neither side."""
    for i in range(runs):
        yield ("ours", "hive") if i % 2 == 0 else ("hive", "ours")


def summarise(pairs: list[dict[str, dict[str, float]]]) -> dict[str, Any]:
    """From the interleaved pairs (each {"ours": figures, "hive": figures}): each side's
    medians, and each figure's ratio ours / Hive as the median of the pairs' ratios (a
    pair ran adjacent in time, so its ratio survives a slow minute on a shared machine)."""
    result: dict[str, Any] = {
        side: {name: statistics.median(p[side][name] for p in pairs) for name in pairs[0][side]}
        for side in SIDES
    }
    result["ratio"] = {
        name: statistics.median(p["ours"][name] / p["hive"][name] for p in pairs)
        for name in pairs[0]["ours"]
        if all(p["hive"][name] for p in pairs)
    }
    result["pairs"] = len(pairs)
    return result


def case_name(cached: bool, accounts: int, connections: int) -> str:
    return f"{'cached' if cached else 'uncached'} {accounts}x{connections}"


def targets(results: dict[str, Any]) -> list[tuple[str, float, bool]]:
    """The issue's two targets against this run's ratios: (what, ratio, met)."""
    found = []
    cached = results["cases"].get(case_name(True, 4, 16))
    if cached:
        rps = cached["ratio"]["rps"]
        found.append(
            (
                f"cached 4 accounts, 16 conn: req/s ≥ {TARGET_CACHED_RPS} × Hive's",
                rps,
                rps >= TARGET_CACHED_RPS,
            )
        )
    uncached = results["cases"].get(case_name(False, 32, 1))
    if uncached:
        cpu = uncached["ratio"]["cpu_ms"]
        found.append(
            (
                f"uncached 32 accounts, 1 conn: CPU per request ≤ {TARGET_UNCACHED_CPU} × Hive's",
                cpu,
                cpu <= TARGET_UNCACHED_CPU,
            )
        )
    return found


def report(results: dict[str, Any]) -> list[str]:
    """The side-by-side table, one line per case and side, then the ratios and targets."""
    versions = ", ".join(f"{k} {v}" for k, v in results.get("versions", {}).items())
    up = results.get("upstream_p50_ms", 0.0)
    lines = [
        f"side by side with Hive Gateway ({versions}); upstream alone p50 {up:.1f} ms; "
        f"ratios are ours / Hive, medians of {results.get('runs', 0)} interleaved pairs",
        f"{'case':16} {'side':5} {'req/s':>8} {'p50 ms':>7} {'over up':>8} {'p99 ms':>7} "
        f"{'CPU ms/req':>10} {'CPU use':>7} {'calls/req':>9} {'fake CPU':>8} {'peak RSS':>9}",
    ]
    for name, case in results["cases"].items():
        for side in SIDES:
            f = case[side]
            lines.append(
                f"{name:16} {side:5} {f['rps']:8.0f} {f['p50_ms']:7.1f} "
                f"{f['p50_ms'] - up:8.1f} {f['p99_ms']:7.1f} {f['cpu_ms']:10.3f} "
                f"{f['cpu_share']:7.0%} {f['calls_per_request']:9.2f} "
                f"{f['upstream_cpu_share']:8.0%} "
                f"{case['peak_rss_mib'][side]:6.0f}MiB"
            )
        r = case["ratio"]
        lines.append(
            f"{name:16} ratio {r['rps']:7.2f}x {r['p50_ms']:6.2f}x {'':8} {r['p99_ms']:6.2f}x "
            f"{r['cpu_ms']:9.2f}x {'':7} {'':9} {'':8} "
            f"{case['peak_rss_mib']['ours'] / case['peak_rss_mib']['hive']:8.2f}x"
        )
    for what, ratio, met in targets(results):
        lines.append(f"target: {what}: {ratio:.2f}x — {'met' if met else 'NOT met'}")
    return lines


def print_report(results: dict[str, Any]) -> None:
    print("\n".join(report(results)))


# The processes: npm, Mesh compose, Hive Gateway, and the interleaved wrk runs.


def install(directory: Path) -> dict[str, str]:
    """The pinned packages into `directory` (npm, no install scripts); the versions of
    REPORTED that resolved, and Node's."""
    if not (directory / "node_modules" / "@graphql-hive" / "gateway").exists():
        (directory / "package.json").write_text(package_json())
        subprocess.run(
            [
                "npm",
                "install",
                "--ignore-scripts",
                "--no-audit",
                "--no-fund",
                "--no-save",
                f"--before={NPM_BEFORE}",
            ],
            cwd=directory,
            check=True,
            timeout=INSTALL_SECONDS,
            stdout=subprocess.DEVNULL,
        )
    node = subprocess.run(["node", "--version"], capture_output=True, text=True, check=True)
    found = {"node": node.stdout.strip()}
    for name in REPORTED:
        manifest = directory / "node_modules" / name / "package.json"
        if manifest.exists():
            found[name] = json.loads(manifest.read_text())["version"]
    return found


def compose(directory: Path, upstream_url: str) -> None:
    """directory/supergraph.graphql from mesh_config (GraphQL Mesh compose)."""
    (directory / "mesh.config.mjs").write_text(mesh_config(upstream_url))
    subprocess.run(
        [
            "node",
            str(directory / "node_modules" / ".bin" / "mesh-compose"),
            "-c",
            "mesh.config.mjs",
            "-o",
            "supergraph.graphql",
        ],
        cwd=directory,
        check=True,
        timeout=120,
        capture_output=True,
    )


@contextmanager
def hive_gateway(directory: Path, cached: bool) -> Iterator[tuple[str, int]]:
    """Hive Gateway on the composed supergraph, one process (`--fork 1`), pinned to the
    gateway CPU, NODE_ENV=production, its log to a file at its default level: (url, pid)."""
    (directory / "gateway.config.mjs").write_text(gateway_config(cached))
    port = free_port()
    with tempfile.TemporaryFile() as logs:
        process = subprocess.Popen(
            pinned(
                GATEWAY_CPU,
                "node",
                str(directory / "node_modules" / ".bin" / "hive-gateway"),
                "supergraph",
                "supergraph.graphql",
                "-c",
                "gateway.config.mjs",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--fork",
                "1",
            ),
            cwd=directory,
            stdout=logs,
            stderr=subprocess.STDOUT,
            env={**os.environ, "NODE_ENV": "production"},
        )
        try:
            wait_http(f"http://127.0.0.1:{port}/healthcheck", 60)
            yield f"http://127.0.0.1:{port}", process.pid
        finally:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)


def post_script(path: Path, query: str, key: str | None) -> str:
    text = WRK_POST.format(body=json.dumps(json.dumps({"query": query})), key=key or "")
    if key is None:
        text = "\n".join(line for line in text.splitlines() if "Authorization" not in line)
    path.write_text(text + "\n")
    return str(path)


def peak_rss_mib(pid: int) -> float:
    match = re.search(r"VmHWM:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text())
    return int(match.group(1)) / 1024 if match else float("nan")


class Side:
    """One gateway under test: where to send, what, and how to check the answer."""

    def __init__(self, url: str, pid: int, script: str, check: Any, body: bytes) -> None:
        self.url, self.pid, self.script, self.check, self.body = url, pid, script, check, body
        self.headers = {"Content-Type": "application/json"}

    def checked(self) -> None:
        answer = httpx.post(self.url, content=self.body, headers=self.headers, timeout=30)
        problem = (
            f"HTTP {answer.status_code}"
            if answer.status_code != 200
            else self.check(answer.content)
        )
        if problem:
            raise RuntimeError(f"{self.url}: {problem}")


def one_run(side: Side, upstream_url: str, up_pid: int, connections: int, seconds: int) -> Any:
    """One wrk run: its req/s and latencies, the gateway's CPU per request and its share of
    the gateway CPU over the run (well under 100 % at 16 connections: it was starved or
    waiting), the upstream calls it made per request, and the fake upstream's CPU share
    (of the load CPU, which wrk shares)."""

    def calls() -> float:
        return float(httpx.get(f"{upstream_url}/_upstream/calls").text)

    cpu, made, up_cpu, wall = cpu_seconds(side.pid), calls(), cpu_seconds(up_pid), time.monotonic()
    figures = wrk(side.url, connections, seconds, side.script)
    wall = time.monotonic() - wall
    requests = figures["rps"] * seconds
    used = cpu_seconds(side.pid) - cpu
    figures["cpu_ms"] = used * 1000 / requests
    figures["cpu_share"] = used / wall
    figures["calls_per_request"] = (calls() - made) / requests
    figures["upstream_cpu_share"] = (cpu_seconds(up_pid) - up_cpu) / wall
    side.checked()  # wrk sees statuses only: a GraphQL error would pass unseen
    return figures


def hive_case(
    upstream_url: str, up_pid: int, seconds: int, runs: int, directory: str | None
) -> Any:
    """Every case of CASES, both gateways, interleaved; `directory`: an npm folder to
    install into and keep (reused when it holds the packages), else a temporary one."""
    with ExitStack() as stack:
        where = Path(directory or stack.enter_context(tempfile.TemporaryDirectory()))
        where.mkdir(parents=True, exist_ok=True)
        print(f"  installing {', '.join(f'{k}@{v}' for k, v in PACKAGES.items())} …", flush=True)
        versions = install(where)
        compose(where, upstream_url)
        scripts = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        results: dict[str, Any] = {
            "versions": versions,
            "runs": runs,
            "seconds": seconds,
            "npm_before": NPM_BEFORE,
            "upstream_p50_ms": upstream_alone(upstream_url, seconds),
            "cases": {},
        }
        groups: dict[tuple[bool, int], list[int]] = {}
        for cached, accounts, connections in CASES:
            groups.setdefault((cached, accounts), []).append(connections)
        for (cached, accounts), connections_list in groups.items():
            with (
                Gateway(ours_config(upstream_url, accounts, cached)) as ours,
                hive_gateway(where, cached) as (hive_url, hive_pid),
            ):
                assert ours.process is not None
                query = hive_query(accounts)
                sides = {
                    "ours": Side(
                        f"{ours.url}/graphql",
                        ours.process.pid,
                        post_script(scripts / "ours.lua", QUERY, BENCH_KEY),
                        lambda body, n=accounts: ours_answer_problem(body, n),
                        json.dumps({"query": QUERY}).encode(),
                    ),
                    "hive": Side(
                        f"{hive_url}/graphql",
                        hive_pid,
                        post_script(scripts / "hive.lua", query, None),
                        lambda body, n=accounts: hive_answer_problem(body, n),
                        json.dumps({"query": query}).encode(),
                    ),
                }
                sides["ours"].headers["Authorization"] = f"Bearer {BENCH_KEY}"
                for side in sides.values():
                    side.checked()
                for connections in connections_list:
                    for side in sides.values():  # warm-up
                        wrk(side.url, connections, max(2, seconds // 3), side.script)
                    pairs = []
                    for order in interleaved(runs):
                        pair = {
                            name: one_run(sides[name], upstream_url, up_pid, connections, seconds)
                            for name in order
                        }
                        pairs.append(pair)
                    case = summarise(pairs)
                    case["peak_rss_mib"] = {name: peak_rss_mib(s.pid) for name, s in sides.items()}
                    name = case_name(cached, accounts, connections)
                    results["cases"][name] = case
                    print(
                        f"  {name}: ours {case['ours']['rps']:.0f} req/s, "
                        f"{case['ours']['cpu_ms']:.2f} ms CPU/req; Hive {case['hive']['rps']:.0f}"
                        f" req/s, {case['hive']['cpu_ms']:.2f} ms CPU/req; ratio req/s "
                        f"{case['ratio']['rps']:.2f}x, CPU {case['ratio']['cpu_ms']:.2f}x",
                        flush=True,
                    )
    return results


def upstream_alone(upstream_url: str, seconds: int) -> float:
    """The fake's Our Voice route alone, same wrk, 1 connection: p50 in ms."""
    url = f"{upstream_url}/ourvoice/v1/current/balance"
    header = f"Authorization: Bearer {OURVOICE_KEY}"
    return wrk(url, 1, max(2, seconds // 2), headers=(header,))["p50_ms"]
