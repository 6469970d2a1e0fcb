"""Balance Gateway benchmark: fan-out overhead, scaling, cached throughput, single flight,
memory. Run on purpose (see bench/README.md), never from `make test`.

The simulator answers every provider call after a fixed 50 ms; the gateway runs as one
uvicorn worker pinned to CPU 0, the simulator and wrk share CPU 1. Each case: a warm-up,
then RUNS measured runs; medians are reported.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from gateway.server.auth import key_hash

ROOT = Path(__file__).resolve().parent.parent
BIN = ROOT / ".venv" / "bin" / "balance-gateway"
LATENCY = 0.05
QUERY = (
    "{ balances { complete totals { currency kind total { amount } available { amount } } "
    "results { __typename ... on AccountBalance { account { id } fetchedAt stale balances "
    "{ id asset { code kind issuer } country { code } total { amount currency } "
    "available { amount } pending { amount } updatedAt } } "
    "... on ProviderFailure { account { id } code } } } }"
)
TENANTS = ["ourvoice-sn", "ourvoice-ci", "magma", "muda-ug", "paymob-eg"]
# The simulator's demo credentials, handed to the gateway as env: references (the
# production profile refuses inline secrets).
SECRETS = {
    "BENCH_OURVOICE_KEY": "demo-ourvoice-sn-key",
    "BENCH_OURVOICE_SLOW_KEY": "demo-ourvoice-ci-key",
    "BENCH_MAGMA_PRIVATE": "demo-magma-private-key",
    "BENCH_MAGMA_SECRET": "demo-magma-secret-key",
    "BENCH_MUDA_KEY": "demo-muda-api-key",
    "BENCH_MUDA_SECRET": "demo-muda-secret-key",
    "BENCH_PAYMOB_PUBLIC": "demo-paymob-public-key",
    "BENCH_PAYMOB_SECRET": "demo-paymob-secret-key",
    "BENCH_CURSOR_SECRET": "bench-cursor-secret-0123456789abcdef",
}
CREDENTIALS = {
    "ourvoice": ('api_key = "env:BENCH_OURVOICE_KEY"', "/ourvoice"),
    "magma_onepay": (
        'private_key = "env:BENCH_MAGMA_PRIVATE"\nsecret_key = "env:BENCH_MAGMA_SECRET"',
        "/magma",
    ),
    "muda": ('api_key = "env:BENCH_MUDA_KEY"\nsecret_key = "env:BENCH_MUDA_SECRET"', "/muda"),
    "paymob_bills": (
        'public_key = "env:BENCH_PAYMOB_PUBLIC"\nsecret_key = "env:BENCH_PAYMOB_SECRET"',
        "/paymob",
    ),
}
CPUS = os.cpu_count() or 1
BENCH_KEY = "bgw_bench-" + "k" * 32
JOURNAL = Path(tempfile.gettempdir()) / f"balance-gateway-bench-{os.getpid()}.db"
GATEWAY_CPU, LOAD_CPU = ("0", "1") if CPUS >= 2 else ("0", "0")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def config(
    sim_url: str,
    per_provider: int,
    fresh: float,
    response_cache: bool,
    providers: list[str] | None = None,
    server: str = "",
    extra: str = "",
) -> str:
    lines = [
        '[server]\nprofile = "production"\ncursor_secret = "env:BENCH_CURSOR_SECRET"\n' + server,
        f'[clients.bench]\nkey_sha256 = "{key_hash(BENCH_KEY)}"\nscopes = ["balances:read"]\n'
        'accounts = ["*"]\n',
        "[rate_limit]\nrequests_per_second = 100000\nburst = 1000000\n",
        f'[idempotency]\nurl = "sqlite:///{JOURNAL}"\n',
        f"[cache]\nfresh_seconds = {fresh}\nresponse_cache = {str(response_cache).lower()}\n",
    ]
    for provider in providers or list(CREDENTIALS):
        secrets, prefix = CREDENTIALS[provider]
        for i in range(per_provider):
            # Muda's budget raised so that every request asks every upstream (its default,
            # 100 calls a minute, would serve Muda from the cache after the first hundred);
            # the other providers have no budget by default.
            budget = "calls_per_minute = 1000000\ncalls_per_day = 100000000\n"
            lines.append(
                f'[accounts.{provider}-{i}]\nprovider = "{provider}"\n'
                f'base_url = "{sim_url}{prefix}"\n{secrets}\n'
                + (budget if provider == "muda" else "")
            )
    return "\n".join(lines) + extra


def pinned(cpu: str, *command: str) -> list[str]:
    return ["taskset", "-c", cpu, *command]


def wait_http(url: str, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


class Gateway:
    def __init__(self, config_text: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        with tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False) as file:
            file.write(config_text)
        self._config = file.name
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Gateway:
        self.process = subprocess.Popen(
            pinned(
                GATEWAY_CPU,
                str(BIN),
                "serve",
                "--config",
                self._config,
                "--port",
                str(self.port),
                "--log-level",
                "warning",
            ),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env={**os.environ, **SECRETS},
        )
        wait_http(f"{self.url}/healthz")
        return self

    def peak_rss_mib(self) -> float:
        assert self.process is not None
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        match = re.search(r"VmHWM:\s+(\d+) kB", status)
        return int(match.group(1)) / 1024 if match else float("nan")

    def __exit__(self, *exc: object) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        os.unlink(self._config)


WRK_POST = """wrk.method = "POST"
wrk.body = {body}
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer {key}"
"""


def wrk(
    url: str,
    connections: int,
    seconds: int,
    script: str | None = None,
    headers: tuple[str, ...] = (),
) -> dict[str, float]:
    command = pinned(LOAD_CPU, "wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency")
    for header in headers:
        command += ["-H", header]
    if script:
        command += ["-s", script]
    out = subprocess.run([*command, url], capture_output=True, text=True, check=True).stdout

    def ms(label: str) -> float:
        match = re.search(rf"^\s+{label}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        if not match:
            raise RuntimeError(f"no {label}% in wrk output:\n{out}")
        value, unit = float(match.group(1)), match.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors:
        raise RuntimeError(f"{errors.group(1)} failed requests:\n{out}")
    return {"p50_ms": ms("50"), "p99_ms": ms("99"), "rps": rps}


def median(runs: list[dict[str, float]]) -> dict[str, float]:
    return {k: statistics.median(r[k] for r in runs) for k in runs[0]}


def cpu_seconds(pid: int) -> float:
    """User + system CPU a process has used so far (from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(
    url: str,
    connections: int,
    seconds: int,
    runs: int,
    script: str | None = None,
    headers: tuple[str, ...] = (),
    cpu_of: dict[str, int] | None = None,
) -> dict[str, float]:
    """Medians of `runs` wrk runs after a warm-up; with `cpu_of` (name → pid), also each
    process's mean CPU milliseconds per request over the measured runs."""
    wrk(url, connections, max(2, seconds // 3), script, headers)  # warm-up
    before = {name: cpu_seconds(pid) for name, pid in (cpu_of or {}).items()}
    measured = [wrk(url, connections, seconds, script, headers) for _ in range(runs)]
    result = median(measured)
    requests = sum(m["rps"] * seconds for m in measured)
    for name, pid in (cpu_of or {}).items():
        result[f"{name}_cpu_ms"] = (cpu_seconds(pid) - before[name]) * 1000 / requests
    return result


def post_script(directory: Path) -> str:
    path = directory / "post.lua"
    path.write_text(WRK_POST.format(body=json.dumps(json.dumps({"query": QUERY})), key=BENCH_KEY))
    return str(path)


def upstream_baseline(sim_url: str, seconds: int, runs: int) -> dict[str, float]:
    """The simulator's own latency per provider, measured by the same wrk, same run."""
    token = httpx.post(
        f"{sim_url}/muda/v1/clients/oauth/token",
        json={"api_key": "demo-muda-api-key", "secret_key": "demo-muda-secret-key"},
    ).json()["data"]["access_token"]
    targets = {
        "ourvoice": ("/ourvoice/v1/current/balance", "Authorization: Bearer demo-ourvoice-sn-key"),
        "magma_onepay": ("/magma/v1/misc/balance", "Authorization: Bearer demo-magma-private-key"),
        "muda": ("/muda/v1/payment/balance", f"Authorization: Bearer {token}"),
    }
    measured = {
        name: measure(sim_url + path, 1, seconds, runs, headers=(header,))
        for name, (path, header) in targets.items()
    }
    slowest = max(measured.values(), key=lambda m: m["p50_ms"])
    return {
        "p50_ms": slowest["p50_ms"],
        "p99_ms": max(m["p99_ms"] for m in measured.values()),
        **{f"{name}_p50_ms": m["p50_ms"] for name, m in measured.items()},
    }


async def cold_burst(url: str, sim_url: str, concurrency: int) -> dict[str, int]:
    headers = {"Authorization": f"Bearer {BENCH_KEY}"}
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(timeout=30, limits=limits, headers=headers) as c:
        before = (await c.get(f"{sim_url}/_sim/calls")).json()
        answers = await asyncio.gather(
            *(c.post(f"{url}/graphql", json={"query": QUERY}) for _ in range(concurrency))
        )
        after = (await c.get(f"{sim_url}/_sim/calls")).json()
    assert all(a.status_code == 200 for a in answers)
    return {k: after[k] - before.get(k, 0) for k in after if after[k] != before.get(k, 0)}


async def overload(url: str, connections: int, seconds: float) -> dict[str, float]:
    """`connections` clients, each sending the next query as soon as the last is answered
    (a closed loop, as impatient dashboards do) — or, when shed, after the `Retry-After` it
    was given — for `seconds`: accepted and shed (503) requests per second, the p99 of
    accepted answers, and the longest answer of any kind."""
    import aiohttp

    body = json.dumps({"query": QUERY}).encode()
    headers = {"Authorization": f"Bearer {BENCH_KEY}", "Content-Type": "application/json"}
    accepted: list[float] = []
    shed: list[float] = []
    other: list[int] = []
    stop = time.monotonic() + seconds
    connector = aiohttp.TCPConnector(limit=connections)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def client() -> None:
            while time.monotonic() < stop:
                started = time.monotonic()
                async with session.post(f"{url}/graphql", data=body, headers=headers) as r:
                    await r.read()
                    took = time.monotonic() - started
                    if r.status == 200:
                        accepted.append(took)
                    elif r.status == 503:
                        shed.append(took)
                        # a good client waits as told (and is counted again when it returns)
                        await asyncio.sleep(float(r.headers.get("Retry-After", "1")))
                    else:
                        other.append(r.status)

        await asyncio.gather(*(client() for _ in range(connections)))
    if other:
        raise RuntimeError(f"unexpected statuses under overload: {sorted(set(other))}")
    ordered = sorted(accepted)
    return {
        "connections": connections,
        "accepted_rps": len(accepted) / seconds,
        "shed_rps": len(shed) / seconds,
        "accepted_p99_ms": ordered[int(len(ordered) * 0.99) - 1] * 1000 if ordered else 0.0,
        "longest_ms": max(accepted + shed, default=0.0) * 1000,
        "shed_p99_ms": sorted(shed)[int(len(shed) * 0.99) - 1] * 1000 if shed else 0.0,
    }


SLOW_TENANT, SLOW_LATENCY = "ourvoice-ci", 0.5
SLOW_ACCOUNT = (
    '[accounts.slow]\nprovider = "ourvoice"\nbase_url = "{sim_url}/ourvoice"\n'
    'api_key = "env:BENCH_OURVOICE_SLOW_KEY"\n'
)
STREAMED = QUERY.replace("results {", "results @stream {").replace(
    "complete totals { currency kind total { amount } available { amount } } ",
    "... @defer { complete totals { currency kind total { amount } available { amount } } } ",
)


async def first_result(url: str, requests: int) -> dict[str, float]:
    """A dashboard of 16 accounts, one of them slow (SLOW_LATENCY, the others 50 ms),
    asked `requests` times one after another: answered whole (the slowest decides), and
    with `results @stream` and the totals deferred over multipart/mixed — when its first
    account's result arrives, and when its last part does. Medians, in milliseconds."""
    headers = {"Authorization": f"Bearer {BENCH_KEY}"}
    parts = {**headers, "Accept": "multipart/mixed"}
    whole, first, last = [], [], []
    async with httpx.AsyncClient(timeout=30, headers=headers) as c:
        for _ in range(requests):
            started = time.perf_counter()
            answer = await c.post(f"{url}/graphql", json={"query": QUERY})
            assert answer.status_code == 200 and "ProviderFailure" not in answer.text
            whole.append(time.perf_counter() - started)
            started, seen = time.perf_counter(), b""
            request = {"query": STREAMED}
            async with c.stream("POST", f"{url}/graphql", json=request, headers=parts) as r:
                assert r.status_code == 200, r.status_code
                async for chunk in r.aiter_raw():
                    if b'"items"' in chunk and b'"items"' not in seen:
                        first.append(time.perf_counter() - started)
                    seen += chunk
            last.append(time.perf_counter() - started)
            assert seen.endswith(b"-----\r\n") and seen.count(b'"account"') == 16
    ms = lambda values: statistics.median(values) * 1000  # noqa: E731
    return {"whole_ms": ms(whole), "first_ms": ms(first), "last_ms": ms(last)}


def first_result_case(sim_url: str, requests: int) -> dict[str, float]:
    """15 accounts at 50 ms and one at SLOW_LATENCY; nothing cached (fresh_seconds = 0)."""
    extra = SLOW_ACCOUNT.format(sim_url=sim_url)
    httpx.put(f"{sim_url}/_sim/faults/{SLOW_TENANT}", json={"latency_seconds": SLOW_LATENCY})
    try:
        sixteen = re.sub(  # four of each provider, one Paymob account making way for it
            r"\[accounts\.paymob_bills-3\]\n(?:[^\[\n].*\n?)*",
            "",
            config(sim_url, 4, 0, False, extra=extra),
        )
        with Gateway(sixteen) as gw:
            asyncio.run(first_result(gw.url, 3))  # warm-up
            return asyncio.run(first_result(gw.url, requests))
    finally:
        httpx.put(f"{sim_url}/_sim/faults/{SLOW_TENANT}", json={"latency_seconds": LATENCY})


def print_first_result(r: dict[str, float]) -> None:
    print(
        f"16 accounts, one at {SLOW_LATENCY * 1000:.0f} ms: whole answer {r['whole_ms']:.0f} ms; "
        f"with @stream, first result {r['first_ms']:.0f} ms, last {r['last_ms']:.0f} ms"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results.json"))
    parser.add_argument(
        "--only",
        choices=("overload", "first-result"),
        help="run one case (the others keep their last results)",
    )
    args = parser.parse_args()
    for tool in ("wrk", "taskset"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is not installed: see bench/README.md")
    sim_port = free_port()
    sim_url = f"http://127.0.0.1:{sim_port}"
    sim = subprocess.Popen(
        pinned(LOAD_CPU, str(BIN), "simulate", "--port", str(sim_port)),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    results: dict[str, Any] = {
        "latency_ms": LATENCY * 1000,
        "runs": args.runs,
        "seconds": args.seconds,
        "cpus": CPUS,
    }
    try:
        wait_http(f"{sim_url}/_sim/calls")
        for tenant in TENANTS:
            httpx.put(f"{sim_url}/_sim/faults/{tenant}", json={"latency_seconds": LATENCY})
        if args.only is not None:
            results = json.loads(Path(args.out).read_text()) if Path(args.out).exists() else {}
            if args.only == "overload":
                results["overload"] = overload_case(sim_url, args.seconds)
                print_overload(results["overload"])
            else:
                results["first result"] = first_result_case(sim_url, 10 * args.runs)
                print_first_result(results["first result"])
            Path(args.out).write_text(json.dumps(results, indent=2))
            return 0
        with tempfile.TemporaryDirectory() as tmp:
            script = post_script(Path(tmp))
            upstream = upstream_baseline(sim_url, args.seconds, args.runs)
            results["upstream"] = upstream
            rss: list[float] = []
            for per_provider, label in ((1, "4 accounts"), (4, "16 accounts")):
                with Gateway(config(sim_url, per_provider, 0, False)) as gw:
                    assert gw.process is not None
                    results[label] = measure(
                        f"{gw.url}/graphql",
                        1,
                        args.seconds,
                        args.runs,
                        script,
                        cpu_of={"gateway": gw.process.pid, "simulator": sim.pid},
                    )
                    rss.append(gw.peak_rss_mib())
            with Gateway(config(sim_url, 1, 0, False, ["magma_onepay"])) as gw:
                results["1 account"] = measure(
                    f"{gw.url}/graphql", 1, args.seconds, args.runs, script
                )
                rss.append(gw.peak_rss_mib())
            with Gateway(config(sim_url, 1, 300, True)) as gw:
                results["cold burst"] = asyncio.run(cold_burst(gw.url, sim_url, 200))
                results["cached 16 connections"] = measure(
                    f"{gw.url}/graphql", 16, args.seconds, args.runs, script
                )
                rss.append(gw.peak_rss_mib())
            results["peak_rss_mib"] = max(rss)
            results["overload"] = overload_case(sim_url, args.seconds)
            results["first result"] = first_result_case(sim_url, 10 * args.runs)
    finally:
        sim.terminate()
        sim.wait(10)
        for suffix in ("", "-wal", "-shm"):
            Path(f"{JOURNAL}{suffix}").unlink(missing_ok=True)
    four = results["4 accounts"]
    results["overhead_p50_ms"] = four["p50_ms"] - upstream["p50_ms"]
    results["overhead_p99_ms"] = four["p99_ms"] - upstream["p99_ms"]
    Path(args.out).write_text(json.dumps(results, indent=2))
    print_table(results)
    print_overload(results["overload"])
    print_first_result(results["first result"])
    return 0


OVERLOAD_CONNECTIONS = 4 * 256  # four times the default [server] max_concurrent_requests


def overload_case(sim_url: str, seconds: int) -> dict[str, dict[str, float]]:
    """Every request asks every upstream (no cache), from 256 impatient clients: with the
    default admission control, and with it effectively off (for comparison)."""
    cases = {"admission on": "", "admission off": "max_concurrent_requests = 100000\n"}
    results = {}
    for name, server in cases.items():
        with Gateway(config(sim_url, 1, 0, False, server=server)) as gw:
            asyncio.run(overload(gw.url, 8, 2))  # warm-up
            results[name] = asyncio.run(overload(gw.url, OVERLOAD_CONNECTIONS, max(seconds, 10)))
    return results


def print_overload(cases: dict[str, dict[str, float]]) -> None:
    print(f"overload: {OVERLOAD_CONNECTIONS} clients in a closed loop, 4 accounts, no cache")
    for name, o in cases.items():
        print(
            f"  {name:13}  accepted {o['accepted_rps']:.0f} req/s (p99 "
            f"{o['accepted_p99_ms']:.0f} ms), shed {o['shed_rps']:.0f} req/s (p99 "
            f"{o['shed_p99_ms']:.0f} ms), longest answer {o['longest_ms']:.0f} ms"
        )


def print_table(r: dict[str, Any]) -> None:
    burst = r["cold burst"]
    rows = [
        ("overhead p50, 4 accounts, 1 connection", f"{r['overhead_p50_ms']:.2f} ms", "≤ 6 ms"),
        ("overhead p99, 4 accounts, 1 connection", f"{r['overhead_p99_ms']:.2f} ms", "≤ 20 ms"),
        (
            "slowest upstream alone p50 / p99",
            f"{r['upstream']['p50_ms']:.2f} / {r['upstream']['p99_ms']:.2f} ms",
            "—",
        ),
        ("p50, 1 account", f"{r['1 account']['p50_ms']:.2f} ms", "—"),
        ("p50, 4 accounts", f"{r['4 accounts']['p50_ms']:.2f} ms", "—"),
        (
            "p50, 16 accounts",
            f"{r['16 accounts']['p50_ms']:.2f} ms",
            f"≤ {r['upstream']['p50_ms'] + 20:.1f} ms",
        ),
        (
            "cached throughput, 16 connections",
            f"{r['cached 16 connections']['rps']:.0f} req/s",
            "≥ 3000 req/s",
        ),
        (
            "upstream calls, 200 concurrent cold queries",
            ", ".join(f"{k} {v}" for k, v in sorted(burst.items())),
            "1 per account",
        ),
        ("peak RSS", f"{r['peak_rss_mib']:.0f} MiB", "≤ 150 MiB"),
        (
            "CPU per request, 4 / 16 accounts: gateway",
            f"{r['4 accounts']['gateway_cpu_ms']:.1f} / "
            f"{r['16 accounts']['gateway_cpu_ms']:.1f} ms",
            "—",
        ),
        (
            "CPU per request, 4 / 16 accounts: simulator",
            f"{r['4 accounts']['simulator_cpu_ms']:.1f} / "
            f"{r['16 accounts']['simulator_cpu_ms']:.1f} ms",
            "—",
        ),
    ]
    width = max(len(row[0]) for row in rows)
    print(f"{'case'.ljust(width)}  {'measured':>28}  target")
    for name, value, target in rows:
        print(f"{name.ljust(width)}  {value:>28}  {target}")


if __name__ == "__main__":
    raise SystemExit(main())
