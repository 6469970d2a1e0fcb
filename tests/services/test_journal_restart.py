"""The PostgreSQL journal when its server restarts mid-run: top-ups are refused (nothing
sent) while it is down, a top-up whose upstream call was already made is reported pending
— never lost, never sent again — and the pool reconnects by itself when the server is back.

Uses its own PostgreSQL server (initdb into a temporary folder, a spare port, started and
stopped here by its PID), never the machine's shared one.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from typing import Any

import httpx
import psycopg
import pytest

from gateway.config.secret import Secret
from gateway.config.settings import IdempotencySettings
from gateway.simulator import Simulator
from tests.helpers import (
    TOP_UP,
    FakeClock,
    credits,
    demo_settings,
    free_port,
    posts,
    running_gateway,
    topup,
)


def postgres_bin() -> str | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"))
    return os.path.dirname(found[-1]) if found else None


class PostgresProcess:
    """A throwaway cluster that asks for a password; the server runs as `postgres` when the
    tests run as root (it refuses root), so its PID is the postmaster's own."""

    PASSWORD = "bgtest-journal-password"

    def __init__(self, bindir: str, port: int) -> None:
        self.bindir, self.port = bindir, port
        self.datadir = tempfile.mkdtemp(prefix="bgtest-pg-")
        self.user = "postgres" if os.geteuid() == 0 else None
        if self.user is not None:
            entry = pwd.getpwnam(self.user)
            os.chown(self.datadir, entry.pw_uid, entry.pw_gid)
        pwfile = os.path.join(self.datadir, "pwfile")
        with open(pwfile, "w") as f:
            f.write(self.PASSWORD)
        if self.user is not None:
            os.chown(pwfile, entry.pw_uid, entry.pw_gid)
        subprocess.run(
            [
                f"{bindir}/initdb",
                "-D",
                f"{self.datadir}/data",
                "-A",
                "scram-sha-256",
                "-U",
                "postgres",
                f"--pwfile={pwfile}",
            ],
            user=self.user,
            check=True,
            capture_output=True,
            cwd=self.datadir,
        )
        self.process: subprocess.Popen[bytes] | None = None
        self.url = f"postgresql://postgres@127.0.0.1:{port}/postgres"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                f"{self.bindir}/postgres",
                "-D",
                f"{self.datadir}/data",
                "-p",
                str(self.port),
                "-k",
                self.datadir,
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "fsync=off",
            ],
            user=self.user,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd=self.datadir,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with contextlib.suppress(psycopg.OperationalError):
                psycopg.connect(self.url, password=self.PASSWORD, connect_timeout=2).close()
                return
            time.sleep(0.05)
        raise RuntimeError("postgres did not start")

    def stop(self) -> None:
        """A fast shutdown (SIGINT): connections are cut, as in a restart or failover."""
        if self.process is not None:
            self.process.send_signal(signal.SIGINT)
            self.process.wait(30)
            self.process = None

    def remove(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(10)
        shutil.rmtree(self.datadir, ignore_errors=True)


@pytest.fixture
def own_postgres() -> Iterator[PostgresProcess]:
    bindir = postgres_bin()
    if bindir is None:
        if os.environ.get("CI") == "true":
            pytest.fail("PostgreSQL's server binaries are required in CI")
        pytest.skip("no PostgreSQL server binaries")
    server = PostgresProcess(bindir, free_port())
    try:
        server.start()
        yield server
    finally:
        server.remove()


class GatedTransport(httpx.AsyncBaseTransport):
    """Holds top-up POSTs until `release` is set, after telling `arrived`; others pass."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.arrived, self.release = asyncio.Event(), asyncio.Event()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            self.arrived.set()
            await self.release.wait()
        return await self.inner.handle_async_request(request)


async def test_a_postgres_restart_refuses_or_reports_pending_never_loses_or_doubles(
    own_postgres: PostgresProcess,
    sim: Simulator,
    sim_transport: httpx.AsyncBaseTransport,
    clock: FakeClock,
) -> None:
    journal = IdempotencySettings(
        url=own_postgres.url, pool_size=4, password=Secret(own_postgres.PASSWORD)
    )  # the password given apart from the URL, as `[idempotency] password` does
    settings = dataclasses.replace(demo_settings(), idempotency=journal)
    gated = GatedTransport(sim_transport)
    gated.release.set()
    async with running_gateway(settings, gated, clock) as gw:

        async def send(key: str) -> dict[str, Any]:
            answer: dict[str, Any] = (await gw.query(TOP_UP, topup(key)))["data"]["topUp"]
            return answer

        before = await send("before")

        # a top-up whose POST is in flight when the server goes away
        gated.release.clear()
        gated.arrived.clear()
        in_flight = asyncio.create_task(send("in-flight"))
        await gated.arrived.wait()
        own_postgres.stop()
        gated.release.set()
        cut_off = await in_flight

        while_down = await send("while-down")
        posts_while_down = posts(sim)

        own_postgres.start()
        after = await send("after")
        replayed_before = await send("before")
        clock.advance(settings.idempotency.lease_seconds + 1)
        replayed_cut_off = await send("in-flight")
        records = {r.key: r.state for r in await gw.app.state.graphql.topups.journal.records()}

    assert before["__typename"] == "TopUpSucceeded"
    assert cut_off["__typename"] == "TopUpPending", cut_off  # sent, outcome not recorded
    assert while_down["__typename"] == "TopUpRejected" and while_down["retryable"] is True
    assert posts_while_down == 2  # nothing sent without a record
    assert after["__typename"] == "TopUpSucceeded"  # the pool reconnected by itself
    assert replayed_before == {**before, "replayed": True}
    assert replayed_cut_off["__typename"] == "TopUpPending"  # never sent again
    assert (posts(sim), credits(sim)) == (3, 3)  # before, in-flight, after: once each
    assert records == {"before": "succeeded", "in-flight": "in_flight", "after": "succeeded"}
