"""Balance Gateway benchmark, in the configuration production runs: the production profile
with a client key, the default log level with the gateway's access log on (text, and JSON
as a second case), rate limiter and response cache on. Every figure comes with the floors
measured in the same run — a bare Starlette endpoint (HTTP) and a raw aiohttp client
(upstream calls) — so ratios survive a noisy machine. Run on purpose (bench/README.md),
never from `make test`; `bench/compare.py` compares two result files.

The upstream is `bench/upstream.py`: the simulator's answers replayed by a minimal asyncio
server after a fixed 50 ms, so it is never the bottleneck (its CPU is printed). The
gateway runs as one uvicorn worker pinned to CPU 0; the upstream and wrk share CPU 1.
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
from collections.abc import Callable
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
    def __init__(self, config_text: str, log: str = "text") -> None:
        """`log`: "text" or "json" at the default level (the access log on), or "warning"
        (text, the access log off: a labelled case, never the headline)."""
        self.log = log
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        with tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False) as file:
            file.write(config_text)
        self._config = file.name
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Gateway:
        # Its log lines are written, as in production, to a file (not a terminal).
        self._logs = tempfile.TemporaryFile()  # closed in __exit__
        self.process = subprocess.Popen(
            pinned(
                GATEWAY_CPU,
                str(BIN),
                "serve",
                "--config",
                self._config,
                "--port",
                str(self.port),
                *(["--log-level", "warning"] if self.log == "warning" else []),
                *(["--log-format", "json"] if self.log == "json" else []),
            ),
            stdout=self._logs,
            stderr=subprocess.STDOUT,
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
        self._logs.close()
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
    counters: dict[str, Callable[[], float]] | None = None,
) -> dict[str, float]:
    """Medians of `runs` wrk runs after a warm-up; with `cpu_of` (name → pid), also each
    process's mean CPU milliseconds per request over the measured runs (`<name>_cpu_ms`),
    and with `counters` (name → a reading), each one's increase per request (`<name>`)."""
    wrk(url, connections, max(2, seconds // 3), script, headers)  # warm-up
    readings = {
        **{
            f"{name}_cpu_ms": (lambda pid=pid: cpu_seconds(pid) * 1000)
            for name, pid in (cpu_of or {}).items()
        },
        **(counters or {}),
    }
    before = {name: read() for name, read in readings.items()}
    measured = [wrk(url, connections, seconds, script, headers) for _ in range(runs)]
    result = median(measured)
    requests = sum(m["rps"] * seconds for m in measured)
    for name, read in readings.items():
        result[name] = (read() - before[name]) / requests
    return result


def post_script(directory: Path) -> str:
    path = directory / "post.lua"
    path.write_text(WRK_POST.format(body=json.dumps(json.dumps({"query": QUERY})), key=BENCH_KEY))
    return str(path)


def upstream_baseline(sim_url: str, seconds: int, runs: int) -> dict[str, float]:
    """The fake upstream's own latency per provider, measured by the same wrk, same run."""
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
    return {"whole_ms": median_ms(whole), "first_ms": median_ms(first), "last_ms": median_ms(last)}


def median_ms(seconds: list[float]) -> float:
    return statistics.median(seconds) * 1000


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


SCALE = (1, 4, 16, 32, 100)  # accounts per dashboard
CONNECTIONS = (1, 16)


def accounts(n: int) -> tuple[int, list[str] | None]:
    """(per provider, providers) for a dashboard of `n` accounts: one Magma account, or
    n / 4 of each provider."""
    return (1, ["magma_onepay"]) if n == 1 else (n // 4, None)


def started(command: list[str], url: str, env: dict[str, str] | None = None) -> Any:
    process = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env
    )
    wait_http(url)
    return process


def upstream_floor(up_url: str, per_request: int, connections: int, seconds: int) -> Any:
    """The raw aiohttp client's CPU per call, pinned to the gateway's CPU (bench/floors.py)."""
    command = pinned(GATEWAY_CPU, sys.executable, str(ROOT / "bench" / "floors.py"), "upstream")
    command += ["--url", up_url, "--per-request", str(per_request)]
    command += ["--connections", str(connections), "--seconds", str(max(3, seconds // 2))]
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    return json.loads(out)


def http_floor(body: bytes, script: str, seconds: int, runs: int) -> dict[str, float]:
    """A bare Starlette endpoint answering the same bytes, same uvicorn, same CPU."""
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as file:
        file.write(body)
    port = free_port()
    command = pinned(
        GATEWAY_CPU,
        str(BIN.parent / "uvicorn"),
        "--app-dir",
        str(ROOT / "bench"),
        "floors:app",
        "--port",
        str(port),
        "--loop",
        "uvloop",
        "--http",
        "httptools",
        "--no-access-log",
        "--log-level",
        "warning",
    )
    process = subprocess.Popen(
        command,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "FLOOR_BODY": file.name},
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/graphql")
        return measure(
            f"http://127.0.0.1:{port}/graphql",
            16,
            seconds,
            runs,
            script,
            cpu_of={"floor": process.pid},
        )
    finally:
        process.terminate()
        process.wait(10)
        os.unlink(file.name)


def scale_case(
    up_url: str, up_pid: int, script: str, seconds: int, runs: int
) -> dict[str, dict[str, float]]:
    """p50/p99, CPU per request and per account, peak RSS, and the upstream floor per call,
    for each dashboard size and connection count. Nothing cached (fresh_seconds = 0)."""
    table: dict[str, dict[str, float]] = {}

    def upstream_calls() -> float:
        return float(httpx.get(f"{up_url}/_upstream/calls").text)

    for n in SCALE:
        per_provider, providers = accounts(n)
        with Gateway(config(up_url, per_provider, 0, True, providers)) as gw:
            assert gw.process is not None
            for c in CONNECTIONS:
                row = measure(
                    f"{gw.url}/graphql",
                    c,
                    seconds,
                    runs,
                    script,
                    cpu_of={"gateway": gw.process.pid, "upstream": up_pid},
                    counters={"upstream_calls_per_request": upstream_calls},
                )
                floor = upstream_floor(up_url, n, c, seconds)
                row["accounts"] = n
                row["connections"] = c
                row["gateway_cpu_ms_per_account"] = row["gateway_cpu_ms"] / n
                # per upstream call made: the single flight shares one call between
                # concurrent dashboards asking the same account
                row["gateway_cpu_ms_per_call"] = (
                    row["gateway_cpu_ms"] / row["upstream_calls_per_request"]
                )
                row["floor_cpu_ms_per_call"] = floor["cpu_ms_per_call"]
                row["cpu_ratio_to_floor"] = (
                    row["gateway_cpu_ms_per_call"] / floor["cpu_ms_per_call"]
                )
                row["floor_p50_ms"] = floor["p50_ms"]
                row["peak_rss_mib"] = gw.peak_rss_mib()
                table[f"{n}x{c}"] = row
                print(
                    f"  {n:>3} accounts, {c:>2} conn: p50 {row['p50_ms']:.1f} ms, gateway "
                    f"{row['gateway_cpu_ms_per_account']:.3f} ms/account, "
                    f"{row['gateway_cpu_ms_per_call']:.3f} ms/upstream call "
                    f"({row['cpu_ratio_to_floor']:.2f}x the floor's)",
                    flush=True,
                )
    return table


def cached_case(
    up_url: str, script: str, seconds: int, runs: int
) -> tuple[dict[str, dict[str, float]], bytes]:
    """A cached dashboard (4 accounts, default freshness, response cache on), 16
    connections, in each log configuration; and the answer's bytes (the HTTP floor's)."""
    cases: dict[str, dict[str, float]] = {}
    body = b""
    for log in ("text", "json", "warning"):
        with Gateway(config(up_url, 1, 15, True), log=log) as gw:
            assert gw.process is not None
            answer = httpx.post(
                f"{gw.url}/graphql",
                json={"query": QUERY},
                headers={"Authorization": f"Bearer {BENCH_KEY}"},
            )
            assert answer.status_code == 200 and b"ProviderFailure" not in answer.content
            body = answer.content
            cases[log] = measure(
                f"{gw.url}/graphql", 16, seconds, runs, script, cpu_of={"gateway": gw.process.pid}
            )
    return cases, body


def wanted(only: str | None, case: str) -> bool:
    return only in (None, case)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results.json"))
    parser.add_argument(
        "--only",
        choices=("scale", "cached", "overload", "first-result"),
        help="run one case (the others keep their last results)",
    )
    parser.add_argument(
        "--report", action="store_true", help="print the report of --out again, run nothing"
    )
    args = parser.parse_args()
    if args.report:
        print_report(json.loads(Path(args.out).read_text()))
        return 0
    for tool in ("wrk", "taskset"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is not installed: see bench/README.md")
    sim_port, up_port = free_port(), free_port()
    sim_url, up_url = f"http://127.0.0.1:{sim_port}", f"http://127.0.0.1:{up_port}"
    sim = started(
        pinned(LOAD_CPU, str(BIN), "simulate", "--port", str(sim_port)), f"{sim_url}/_sim/calls"
    )
    upstream = started(
        pinned(
            LOAD_CPU,
            sys.executable,
            str(ROOT / "bench" / "upstream.py"),
            "--port",
            str(up_port),
            "--simulator",
            sim_url,
            "--latency",
            str(LATENCY),
        ),
        f"{up_url}/_upstream/cpu",
    )
    for tenant in TENANTS:
        httpx.put(f"{sim_url}/_sim/faults/{tenant}", json={"latency_seconds": LATENCY})
    previous = json.loads(Path(args.out).read_text()) if Path(args.out).exists() else {}
    results: dict[str, Any] = previous if args.only else {}
    results.update(
        {"latency_ms": LATENCY * 1000, "runs": args.runs, "seconds": args.seconds, "cpus": CPUS}
    )
    try:
        with tempfile.TemporaryDirectory() as tmp:
            script = post_script(Path(tmp))
            if wanted(args.only, "scale") or wanted(args.only, "cached"):
                results["upstream"] = upstream_baseline(up_url, args.seconds, args.runs)
            if wanted(args.only, "cached"):
                cached, body = cached_case(up_url, script, args.seconds, args.runs)
                results["cached"] = cached
                results["http_floor"] = http_floor(body, script, args.seconds, args.runs)
            if wanted(args.only, "scale"):
                results["scale"] = scale_case(up_url, upstream.pid, script, args.seconds, args.runs)
                results["upstream_cpu_seconds"] = float(httpx.get(f"{up_url}/_upstream/cpu").text)
            if args.only is None:  # straight to the simulator, which counts the calls
                with Gateway(config(sim_url, 1, 300, True)) as gw:
                    results["cold burst"] = asyncio.run(cold_burst(gw.url, sim_url, 200))
            if wanted(args.only, "overload"):
                results["overload"] = overload_case(up_url, args.seconds)
            if wanted(args.only, "first-result"):
                results["first result"] = first_result_case(sim_url, 10 * args.runs)
    finally:
        for process in (upstream, sim):
            process.terminate()
            process.wait(10)
        for suffix in ("", "-wal", "-shm"):
            Path(f"{JOURNAL}{suffix}").unlink(missing_ok=True)
    if "scale" in results:
        results.update(derived(results))
    Path(args.out).write_text(json.dumps(results, indent=2))
    print_report(results)
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


def derived(r: dict[str, Any]) -> dict[str, float]:
    """What one more account costs at one connection (every account one upstream call):
    the slope of CPU per request from 32 to 100 accounts, without the per-request part."""
    one, big = r["scale"]["32x1"], r["scale"]["100x1"]
    return {"marginal_cpu_ms_per_account": (big["gateway_cpu_ms"] - one["gateway_cpu_ms"]) / 68}


def print_report(r: dict[str, Any]) -> None:
    up = r.get("upstream", {})
    if "http_floor" in r:
        floor = r["http_floor"]
        print(
            f"HTTP floor (bare Starlette, same bytes, 16 connections): {floor['rps']:.0f} req/s, "
            f"{floor['floor_cpu_ms'] * 1000:.0f} µs CPU per request"
        )
        print("cached dashboard, 4 accounts, 16 connections (response cache on):")
        for log, case in r["cached"].items():
            label = {
                "text": "access log on, text",
                "json": "access log on, JSON",
                "warning": "--log-level warning (no access log; not the headline)",
            }[log]
            print(
                f"  {label:55} {case['rps']:6.0f} req/s = {case['rps'] / floor['rps']:.0%} "
                f"of the floor; {case['gateway_cpu_ms'] * 1000:.0f} µs CPU per request"
            )
    if "scale" in r:
        slowest = up["p50_ms"]
        print(
            f"upstream alone (slowest) p50 / p99: {slowest:.1f} / {up['p99_ms']:.1f} ms; "
            f"fake upstream CPU over the run: {r['upstream_cpu_seconds']:.0f} s"
        )
        print(
            "accounts conn   p50 ms   p99 ms  overhead  CPU/req  CPU/acct  calls/req  "
            "CPU/call  floor/call  ratio   RSS  upstream CPU/req"
        )
        for row in r["scale"].values():
            print(
                f"{row['accounts']:>8} {row['connections']:>4} {row['p50_ms']:8.1f} "
                f"{row['p99_ms']:8.1f} {row['p50_ms'] - slowest:8.1f}ms "
                f"{row['gateway_cpu_ms']:7.2f}ms {row['gateway_cpu_ms_per_account']:8.3f}ms "
                f"{row['upstream_calls_per_request']:9.1f} {row['gateway_cpu_ms_per_call']:8.3f}ms "
                f"{row['floor_cpu_ms_per_call']:9.3f}ms {row['cpu_ratio_to_floor']:6.2f}x "
                f"{row['peak_rss_mib']:4.0f}MiB {row['upstream_cpu_ms']:6.2f}ms"
            )
        big = r["scale"]["100x1"]
        marginal = derived(r)["marginal_cpu_ms_per_account"]
        floor = big["floor_cpu_ms_per_call"]
        hundred = big["p50_ms"] - slowest
        print(
            f"targets: CPU per account ≤ 2x the floor per call: {marginal:.3f} ms per added "
            f"account (32→100, 1 connection) = {marginal / floor:.1f}x the floor's "
            f"{floor:.3f} ms; 100 accounts p50 ≤ slowest + 15 ms: +{hundred:.1f} ms",
            end="",
        )
        if "http_floor" in r:
            share = r["cached"]["text"]["rps"] / r["http_floor"]["rps"]
            print(f"; cached ≥ 60 % of the HTTP floor: {share:.0%}")
        else:
            print()
    if "cold burst" in r:
        burst = ", ".join(f"{k} {v}" for k, v in sorted(r["cold burst"].items()))
        print(f"upstream calls, 200 concurrent cold queries: {burst}")
    if "overload" in r:
        print_overload(r["overload"])
    if "first result" in r:
        print_first_result(r["first result"])


if __name__ == "__main__":
    raise SystemExit(main())
