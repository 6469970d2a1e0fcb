"""`[metrics] listen` as operators run it: `balance-gateway serve` in its own process, scraped
over real HTTP. The listener answers `/metrics` without a key — the very series the main
port shows a `metrics:read` client, whose `/metrics` still refuses anyone else — and 404
everywhere else. Under `--workers 2` it answers for both workers, each series labelled
with its worker, and keeps answering when a worker is killed and replaced. A port the
listener cannot have stops the start with one line."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
from pathlib import Path

import httpx

from gateway.server.auth import key_hash
from tests.helpers import free_port, sample, sample_sum
from tests.system.processes import (
    CLI,
    KEY,
    SECRETS,
    Process,
    clean_env,
    completed,
    concurrently,
    gateway_and_simulator,
    production_config,
)

METRICS_KEY = "bgw_system-test-metrics-key-0123456789"
QUERY = "{ balances { complete } }"
OK = {"operation_name": "none", "operation_type": "query", "outcome": "ok", "reason": ""}
ELSEWHERE = ["/", "/graphql", "/graphql/stream", "/healthz", "/readyz", "/dashboard", "/metrics/"]


def config_with_listener(folder: Path, sim_url: str, metrics_port: int) -> Path:
    extra = f"""
[metrics]
listen = "127.0.0.1:{metrics_port}"

[clients.prometheus]
key_sha256 = "{key_hash(METRICS_KEY)}"
scopes = ["metrics:read"]
accounts = []
"""
    config = folder / "gateway.toml"
    config.write_text(production_config(sim_url, folder / "journal.db", extra))
    return config


def series(text: str) -> set[str]:
    """Each sample's name and labels (values move between two scrapes: CPU seconds)."""
    return {line.rsplit(" ", 1)[0] for line in text.splitlines() if not line.startswith("#")}


def test_the_listener_serves_metrics_without_a_key_and_nothing_else(tmp_path: Path) -> None:
    sim_port, gw_port, metrics_port = free_port(), free_port(), free_port()
    sim_url, gw_url = f"http://127.0.0.1:{sim_port}", f"http://127.0.0.1:{gw_port}"
    listener = f"http://127.0.0.1:{metrics_port}"
    config = config_with_listener(tmp_path, sim_url, metrics_port)
    env = clean_env(**SECRETS)
    with gateway_and_simulator(config, (sim_port, gw_port), tmp_path / "logs", env) as (
        sim,
        gateway,
    ):
        asked = httpx.post(
            f"{gw_url}/graphql", json={"query": QUERY}, headers=bearer(KEY), timeout=10
        )
        scraped = httpx.get(f"{listener}/metrics", timeout=10)
        main_refused = httpx.get(f"{gw_url}/metrics", timeout=10)
        main_forbidden = httpx.get(f"{gw_url}/metrics", headers=bearer(KEY), timeout=10)
        main = httpx.get(f"{gw_url}/metrics", headers=bearer(METRICS_KEY), timeout=10)
        elsewhere = {path: httpx.get(f"{listener}{path}", timeout=10) for path in ELSEWHERE}
        graphql = httpx.post(f"{listener}/graphql", json={"query": QUERY}, timeout=10)
        status = gateway.stop(signal.SIGTERM)
        sim.stop(signal.SIGTERM)

    assert status == 0, gateway.output
    assert asked.status_code == 200 and asked.json()["data"]["balances"]["complete"]
    assert f"  metrics    {listener}/metrics   (no key: [metrics] listen)" in gateway.stdout
    assert scraped.status_code == 200
    assert scraped.headers["content-type"] == main.headers["content-type"]
    assert main_refused.status_code == 401  # the main port: as before, a key needed…
    assert main_forbidden.status_code == 403  # … with the metrics:read scope
    assert main.status_code == 200
    assert sample(scraped.text, "gateway_requests_total", **OK) == 1
    assert sample(main.text, "gateway_requests_total", **OK) == 1
    assert series(scraped.text) == series(main.text)  # the same exposition
    assert {path: answer.status_code for path, answer in elsewhere.items()} == dict.fromkeys(
        ELSEWHERE, 404
    )
    assert graphql.status_code == 404


def bearer(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


def children(process: Process) -> list[int]:
    pid = process.popen.pid
    text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    return [int(child) for child in text.split()]


def listening_inode(port: int) -> str:
    """The inode of the socket listening on 127.0.0.1:`port` (from /proc/net/tcp)."""
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[1] == f"0100007F:{port:04X}" and fields[3] == "0A":  # LISTEN
            return fields[9]
    raise AssertionError(f"nothing listens on port {port}")


def holding(pids: list[int], inode: str) -> int:
    """Which of `pids` holds that socket open: the worker serving it."""
    (holder,) = [
        pid
        for pid in pids
        for fd in Path(f"/proc/{pid}/fd").iterdir()
        if os.readlink(fd) == f"socket:[{inode}]"
    ]
    return holder


def workers_in(text: str) -> set[str]:
    return {
        line.split('worker="', 1)[1].split('"', 1)[0]
        for line in text.splitlines()
        if line.startswith("process_resident_memory_bytes{")
    }


def test_under_workers_the_listener_answers_for_every_worker_through_a_kill(
    tmp_path: Path,
) -> None:
    sim_port, gw_port, metrics_port = free_port(), free_port(), free_port()
    sim_url, gw_url = f"http://127.0.0.1:{sim_port}", f"http://127.0.0.1:{gw_port}"
    listener = f"http://127.0.0.1:{metrics_port}/metrics"
    config = config_with_listener(tmp_path, sim_url, metrics_port)
    temporary = tmp_path / "tmp"  # where the supervisor makes the workers' socket folder
    temporary.mkdir()
    env = clean_env(**SECRETS, TMPDIR=str(temporary))

    def banner(gateway: Process) -> None:
        gateway.wait_for(lambda: "2 workers) is ready" in gateway.stdout, "the banner")

    with gateway_and_simulator(
        config,
        (sim_port, gw_port),
        tmp_path / "logs",
        env,
        serve=["--workers", "2"],
        ready=banner,
    ) as (sim, gateway):
        answers = asyncio.run(concurrently(gw_url, 20, lambda i: {"query": QUERY}, bearer(KEY)))
        before = httpx.get(listener, timeout=10).text
        (folder,) = temporary.iterdir()
        sockets = sorted(path.name for path in folder.iterdir())
        # worker 0, the one serving the listener, killed outright by its PID
        gateway_pids = set(children(gateway))
        os.kill(holding(children(gateway), listening_inode(metrics_port)), signal.SIGKILL)
        during = httpx.get(listener, timeout=15)  # waits for its replacement: no error
        gateway.wait_for(
            lambda: len(set(children(gateway)) - gateway_pids) == 1, "the worker's replacement"
        )
        gateway.wait_for(
            lambda: workers_in(httpx.get(listener, timeout=15).text) == {"0", "1"},
            "both workers in a scrape again",
        )
        status = gateway.stop(signal.SIGTERM)
        sim.stop(signal.SIGTERM)

    assert status == 0, gateway.output
    assert {r.status_code for r in answers} == {200}
    assert "(no key: [metrics] listen, every worker's, labelled worker)" in gateway.stdout
    assert workers_in(before) == {"0", "1"}
    # every request counted once, by the worker that answered it
    assert sample_sum(before, "gateway_requests_total") == 20
    assert sockets == ["0.sock", "1.sock"]
    assert during.status_code == 200 and workers_in(during.text)
    assert "ended on its own" in gateway.stderr
    assert not any(temporary.iterdir())  # the supervisor removed the sockets' folder


def test_a_port_the_listener_cannot_have_is_one_line(tmp_path: Path) -> None:
    env = clean_env(**SECRETS)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        config = config_with_listener(tmp_path, "http://127.0.0.1:9", busy)
        serve = [str(CLI), "serve", "--config", str(config), "--port", str(free_port())]
        in_use = completed(serve, env=env)
    port = free_port()
    config = config_with_listener(tmp_path, "http://127.0.0.1:9", port)
    same = completed([str(CLI), "serve", "--config", str(config), "--port", str(port)], env=env)
    simulator = [*same.args[:-1], str(free_port()), "--simulator-port", str(port)]
    demo = completed(simulator, env=env)
    assert in_use.returncode == 2
    assert in_use.stderr.strip().splitlines()[-1] == (
        f"error: 127.0.0.1:{busy} is already in use; choose another port in [metrics] listen"
    )
    assert same.returncode == 2
    assert same.stderr.strip().splitlines()[-1] == (
        f"error: [metrics] listen = '127.0.0.1:{port}' is the gateway's own port: "
        "give the metrics listener a port of its own"
    )
    assert demo.returncode == 2 and "Traceback" not in demo.stderr
    assert demo.stderr.strip().splitlines()[-1] == (
        f"error: [metrics] listen = '127.0.0.1:{port}' is the simulator's port: "
        "give the metrics listener a port of its own"
    )
