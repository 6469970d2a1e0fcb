"""Real OS processes for system tests: the installed CLI, started and always stopped by PID.

Output goes to files (never a pipe that could fill and block the child); waiting is polling
a condition with a bound, never a fixed sleep.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from gateway.server.auth import key_hash
from tests.helpers import ROOT, demo_text, free_port

CLI = ROOT / ".venv" / "bin" / "balance-gateway"
START_SECONDS = 30.0
STOP_SECONDS = 15.0


class Process:
    def __init__(self, popen: subprocess.Popen[bytes], stdout: Path, stderr: Path) -> None:
        self.popen = popen
        self.stdout_path = stdout
        self.stderr_path = stderr

    @property
    def stdout(self) -> str:
        return self.stdout_path.read_text(encoding="utf-8", errors="replace")

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text(encoding="utf-8", errors="replace")

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def wait_for(self, condition: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + START_SECONDS
        while time.monotonic() < deadline:
            if condition():
                return
            if self.popen.poll() is not None:
                raise AssertionError(
                    f"exited ({self.popen.returncode}) before {what}:\n{self.output}"
                )
            time.sleep(0.05)
        raise AssertionError(f"no {what} within {START_SECONDS} s:\n{self.output}")

    def wait_http(self, url: str) -> None:
        """Until `url` answers below 500: exactly one request of the wait gets an answer."""

        def up() -> bool:
            try:
                return httpx.get(url, timeout=1).status_code < 500
            except httpx.HTTPError:
                return False

        self.wait_for(up, f"answer from {url}")

    def stop(self, signum: int = signal.SIGTERM, *, group: bool = False) -> int:
        """Signal it (or its whole process group) and wait; killed if it will not stop."""
        if self.popen.poll() is None:
            if group:
                os.killpg(self.popen.pid, signum)
            else:
                self.popen.send_signal(signum)
            try:
                self.popen.wait(STOP_SECONDS)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait()
                raise AssertionError(
                    f"did not stop within {STOP_SECONDS} s:\n{self.output}"
                ) from None
        return self.popen.returncode


@contextmanager
def started(
    argv: Sequence[str],
    logs: Path,
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path = ROOT,
) -> Iterator[Process]:
    """`argv` in its own process group (so a group signal reaches its children too); it is
    stopped by its PID when the block ends, whatever happened."""
    logs.mkdir(parents=True, exist_ok=True)
    name = Path(argv[0]).name + "-" + str(len(list(logs.iterdir())))
    stdout, stderr = logs / f"{name}.out", logs / f"{name}.err"
    with stdout.open("wb") as out, stderr.open("wb") as err:
        popen = subprocess.Popen(
            list(argv),
            stdout=out,
            stderr=err,
            stdin=subprocess.DEVNULL,
            cwd=cwd,
            env=dict(env if env is not None else os.environ),
            start_new_session=True,
        )
    process = Process(popen, stdout, stderr)
    try:
        yield process
    finally:
        if popen.poll() is None:
            os.killpg(popen.pid, signal.SIGKILL)
            popen.wait()


@contextmanager
def gateway_and_simulator(
    config: Path,
    ports: tuple[int, int],
    logs: Path,
    env: Mapping[str, str],
    *,
    simulate: Sequence[str] = (),
    serve: Sequence[str] = (),
    ready: Callable[[Process], None] | None = None,
) -> Iterator[tuple[Process, Process]]:
    """`simulate` on `ports[0]` and `serve --config config` on `ports[1]`, each its own OS
    process, both answering when the block starts (the gateway's `/readyz`, or `ready`);
    stopped by their PIDs when it ends."""
    sim_port, gw_port = ports
    with (
        started([str(CLI), "simulate", "--port", str(sim_port), *simulate], logs, env=env) as sim,
        started(
            [str(CLI), "serve", "--config", str(config), "--port", str(gw_port), *serve],
            logs,
            env=env,
        ) as gateway,
    ):
        sim.wait_http(f"http://127.0.0.1:{sim_port}/_sim/calls")
        if ready is None:
            gateway.wait_http(f"http://127.0.0.1:{gw_port}/readyz")
        else:
            ready(gateway)
        yield sim, gateway


def demo_config(folder: Path, text: str | None = None) -> Path:
    """The demo config (or `text`, written from it) in `folder`, with a journal of its own
    there instead of `.data/` in the checkout."""
    config = folder / "demo.toml"
    journal = f"sqlite:///{folder / 'journal.db'}"
    config.write_text(demo_text(text).replace("sqlite:///.data/demo-topups.db", journal))
    return config


def serve_demo(folder: Path) -> tuple[list[str], int, int]:
    """`serve` of the demo config on free ports, with its simulator: (argv, gateway port,
    simulator port)."""
    port, sim_port = free_port(), free_port()
    command = [str(CLI), "serve", "--config", str(demo_config(folder)), "--port", str(port)]
    return [*command, "--simulator-port", str(sim_port)], port, sim_port


@dataclass
class Demo:
    process: Process
    url: str  # the gateway's, http://127.0.0.1:<port>
    sim_url: str  # its simulator's


@contextmanager
def demo_served(folder: Path) -> Iterator[Demo]:
    """`serve_demo(folder)` started, answering `/healthz` when the block starts; stopped with
    SIGTERM when it ends (killed by its PID if the block fails)."""
    command, port, sim_port = serve_demo(folder)
    with started(command, folder / "logs", env=clean_env()) as gateway:
        gateway.wait_http(f"http://127.0.0.1:{port}/healthz")
        yield Demo(gateway, f"http://127.0.0.1:{port}", f"http://127.0.0.1:{sim_port}")
        gateway.stop(signal.SIGTERM)


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without the outer make's job-server variables."""
    env = {k: v for k, v in os.environ.items() if k not in {"MAKEFLAGS", "MFLAGS", "MAKELEVEL"}}
    env.update(extra)
    return env


def completed(
    argv: Sequence[str], cwd: Path = ROOT, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`argv` run to its end (at most a minute), its output captured as text; `env`
    (default: this one, `clean_env()`)."""
    return subprocess.run(
        list(argv),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        env=dict(env) if env is not None else clean_env(),
        check=False,
    )


KEY = "bgw_system-test-key-0123456789abcdef"
# The simulator's demo credentials, handed over as env: references (production refuses
# inline secrets); each must stay out of every line either process writes.
SECRETS = {
    "OV_KEY": "demo-ourvoice-sn-key",
    "MAGMA_PRIVATE": "demo-magma-private-key",
    "MAGMA_SECRET": "demo-magma-secret-key",
    "MUDA_KEY": "demo-muda-api-key",
    "MUDA_SECRET": "demo-muda-secret-key",
    "PAYMOB_PUBLIC": "demo-paymob-public-key",
    "PAYMOB_SECRET": "demo-paymob-secret-key",
    "CURSOR_SECRET": "system-test-cursor-secret-0123456789",
}


def production_config(
    sim: str,
    journal: Path,
    extra: str = "",
    server: str = "",
    cache: str = "memory://",
    namespace: str = "balance-gateway",
) -> str:
    """Four accounts on the simulator at `sim`, one client (KEY); `extra` tables before
    the rest, `server` lines in [server]."""
    return f"""{extra}
[server]
profile = "production"
cursor_secret = "env:CURSOR_SECRET"
{server}

[cache]
url = "{cache}"
namespace = "{namespace}"

[idempotency]
url = "sqlite:///{journal}"

[clients.ops]
key_sha256 = "{key_hash(KEY)}"
scopes = ["balances:read", "topup:write"]
accounts = ["*"]

[accounts.ourvoice-sn]
provider = "ourvoice"
base_url = "{sim}/ourvoice"
api_key = "env:OV_KEY"

[accounts.magma]
provider = "magma_onepay"
base_url = "{sim}/magma"
private_key = "env:MAGMA_PRIVATE"
secret_key = "env:MAGMA_SECRET"

[accounts.muda-ug]
provider = "muda"
base_url = "{sim}/muda/v1"
api_key = "env:MUDA_KEY"
secret_key = "env:MUDA_SECRET"

[accounts.paymob-eg]
provider = "paymob_bills"
base_url = "{sim}/paymob"
public_key = "env:PAYMOB_PUBLIC"
secret_key = "env:PAYMOB_SECRET"
"""


TIGHT_KEY = "bgw_tight-client-key-0123456789abcdef"
# A client whose bucket holds 10 requests and never refills within a test.
TIGHT_CLIENT = f"""
[clients.tight]
key_sha256 = "{key_hash(TIGHT_KEY)}"
scopes = ["balances:read"]
accounts = ["*"]
requests_per_second = 0.001
burst = 10
"""


async def concurrently(
    url: str,
    count: int,
    body: Callable[[int], Any],
    headers: Mapping[str, str] | None = None,
) -> list[httpx.Response]:
    """`count` POSTs to `url`/graphql at once, each on its own connection; `body(i)` is the
    i-th JSON body."""
    limits = httpx.Limits(max_connections=count, max_keepalive_connections=0)
    async with httpx.AsyncClient(timeout=60, limits=limits) as http:
        return list(
            await asyncio.gather(
                *(
                    http.post(f"{url}/graphql", json=body(i), headers=dict(headers or {}))
                    for i in range(count)
                )
            )
        )


_INSTALLED: dict[tuple[str, ...], Path] = {}  # this session's installs, by their packages


def npm_installed(npm: str, folder: Path, packages: Sequence[str]) -> Path:
    """`packages` (pinned) installed from the npm registry into `folder`: never vendored.
    The same packages a second time in a session: `folder/node_modules` is a link to the
    first install's (a parametrised test's second case installs nothing again)."""
    folder.mkdir(parents=True, exist_ok=True)
    earlier = _INSTALLED.get(tuple(packages))
    if earlier is not None and (earlier / "node_modules").is_dir():
        (folder / "node_modules").symlink_to(earlier / "node_modules", target_is_directory=True)
        return folder
    options = ["--no-audit", "--no-fund", "--loglevel=error", "--prefix", str(folder)]
    installed = completed([npm, "install", *options, *packages])
    assert installed.returncode == 0, installed.stderr
    _INSTALLED[tuple(packages)] = folder
    return folder


class NodeScript:
    """`source` as `name` in `folder`, beside its npm `packages` (pinned, installed there),
    run by Node; `node` is the (node, npm) pair of the `node` fixture."""

    def __init__(
        self, node: tuple[str, str], folder: Path, packages: Sequence[str], name: str, source: str
    ) -> None:
        self.node, npm = node
        self.folder = npm_installed(npm, folder, packages)
        self.script = folder / name
        self.script.write_text(source)

    def run(self, *args: str) -> Any:
        """What the script printed, as JSON; the test fails if it exits other than 0."""
        ran = completed([self.node, str(self.script), *args], cwd=self.folder)
        assert ran.returncode == 0, ran.stderr
        return json.loads(ran.stdout)
