"""`make run` as a developer meets it: addresses printed once ready, the demo's accounts
following the simulator's port, a quiet Ctrl-C, and a port in use named in one line."""

from __future__ import annotations

import signal
import socket
import subprocess
from pathlib import Path

import httpx

from tests.helpers import ROOT, free_port
from tests.system.processes import CLI, clean_env, completed, started


def test_make_run_prints_its_addresses_follows_sim_port_and_stops_quietly(
    tmp_path: Path,
) -> None:
    port, sim_port = free_port(), free_port()
    argv = ["make", "--no-print-directory", "run", f"PORT={port}", f"SIM_PORT={sim_port}"]
    with started(argv, tmp_path, env=clean_env()) as run:
        run.wait_for(lambda: "Press Ctrl-C to stop." in run.stdout, "the ready lines")
        banner = run.stdout
        answer = httpx.post(
            f"http://127.0.0.1:{port}/graphql",
            json={"query": "{ balances { complete results { __typename } } }"},
            timeout=30,
        ).json()
        page = httpx.get(f"http://127.0.0.1:{port}/", timeout=10)
        dashboard = httpx.get(f"http://127.0.0.1:{port}/dashboard", timeout=10)
        levels = httpx.post(
            f"http://127.0.0.1:{port}/graphql",
            json={
                "query": '{ account(id: "ourvoice-sn") { balance { ... on AccountBalance '
                "{ balances { level } } } } }"
            },
            timeout=30,
        ).json()
        status = run.stop(signal.SIGINT, group=True)  # what Ctrl-C in a terminal does
    for line in (
        f"GraphQL    http://127.0.0.1:{port}/graphql",
        f"MCP        http://127.0.0.1:{port}/mcp",
        f"dashboard  http://127.0.0.1:{port}/dashboard",
        f"health     http://127.0.0.1:{port}/healthz",
        f"metrics    http://127.0.0.1:{port}/metrics",
        f"simulator  http://127.0.0.1:{sim_port}",
    ):
        assert line in banner
    # The demo's accounts reach the simulator on the port it was moved to.
    assert answer["data"]["balances"]["complete"] is True
    assert len(answer["data"]["balances"]["results"]) == 5
    assert 'href="/graphql"' in page.text and 'href="/healthz"' in page.text
    assert 'href="/dashboard"' in page.text
    # The demo's dashboard: the page, and ourvoice-sn at WARNING by the demo's thresholds.
    assert dashboard.status_code == 200 and "/dashboard/dashboard.js" in dashboard.text
    assert levels["data"]["account"]["balance"]["balances"] == [{"level": "WARNING"}]
    output = run.output
    assert "Traceback" not in output and "Interrupt" not in output and "Error" not in output
    assert "Finished server process" in output  # it shut down, it was not killed
    assert status in (0, -signal.SIGINT)  # make re-raises the signal it received


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return completed([str(CLI), *args])


def test_a_port_in_use_is_one_clear_line_naming_the_port_and_the_variable() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = str(ROOT / "deploy" / "demo.toml")
        gateway = run_cli("serve", "--config", config, "--port", str(port))
        simulator = run_cli(
            "serve", "--config", config, "--port", str(free_port()), "--simulator-port", str(port)
        )
        alone = run_cli("simulate", "--port", str(port))
    for result, option, variable in (
        (gateway, "--port", "PORT"),
        (simulator, "--simulator-port", "SIM_PORT"),
        (alone, "--port", "SIM_PORT"),
    ):
        assert result.returncode == 2
        (line,) = result.stderr.strip().splitlines()
        assert f"127.0.0.1:{port} is already in use" in line
        assert f"{option} N" in line and f"{variable}=N" in line


def test_version() -> None:
    from gateway import __version__

    result = run_cli("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"balance-gateway {__version__}"
    assert __version__[0].isdigit()


def fake_venv(root: Path, cli_works: bool) -> Path:
    """A .venv whose CLI works or not, its install stamp newer than pyproject.toml."""
    venv = root / ".venv"
    (venv / "bin").mkdir(parents=True)
    cli = venv / "bin" / "balance-gateway"
    cli.write_text(f"#!/bin/sh\nexit {0 if cli_works else 1}\n")
    cli.chmod(0o755)
    (venv / ".installed").touch()
    return venv


def make(*args: str) -> subprocess.CompletedProcess[str]:
    return completed(["make", "--no-print-directory", *args])


def test_make_rebuilds_a_venv_that_cannot_run_the_cli(tmp_path: Path) -> None:
    working = make("-n", f"VENV={fake_venv(tmp_path / 'a', cli_works=True)}", "lint")
    broken = make("-n", f"VENV={fake_venv(tmp_path / 'b', cli_works=False)}", "lint")
    assert "pip install" not in working.stdout  # trusted: nothing to do
    assert "rebuilding it" in broken.stdout and "pip install" in broken.stdout


def test_a_python_older_than_3_11_is_one_line_saying_what_to_run(tmp_path: Path) -> None:
    venv = fake_venv(tmp_path, cli_works=False)
    result = make(f"VENV={venv}", "PYTHON=false", "lint")  # `false -c …` fails like 3.10
    assert result.returncode != 0
    assert "is not Python 3.11 or newer; run: make PYTHON=python3.12 lint" in result.stderr
    assert (venv / "bin" / "balance-gateway").exists()  # nothing was touched
