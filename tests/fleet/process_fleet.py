"""The fleet of `harness.py` as real OS processes: each replica is `balance-gateway serve`
on a port of its own, reading the test's clock from a file (`BALANCE_GATEWAY_TEST_CLOCK`,
which only the development profile takes); the simulator and the webhook receiver are
served by the test on loopback. A restart is SIGTERM (the replica drains and writes what
it has queued) then a new process; a kill is SIGKILL of the process group.

A replica writes its reads off the request path, so after each poll the test waits until
the shared database shows the read applied — the history row of its bucket and, for a
balance with a rule, the alert's read time — before it goes on: a kill then lands between
two applied reads, and whatever a killed replica was sending (a claimed delivery) is sent
again by another once its claim expires.
"""

from __future__ import annotations

import asyncio
import signal
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx

from gateway.clock import TEST_CLOCK_ENV
from gateway.config.settings import Settings
from gateway.services.journal import Journal, open_journal
from tests.fleet import oracle
from tests.fleet.harness import QUERY, Fleet, account_of
from tests.fleet.traces import REPLICAS, Trace
from tests.helpers import FakeClock, free_port
from tests.system.processes import CLI, Process, clean_env, started
from tests.webhook_receiver import SECRET

SETTLE_SECONDS = 20.0


class FileClock(FakeClock):
    """The injected clock, written to a file at every move for the replicas to read."""

    def __init__(self, now: float, path: Path) -> None:
        super().__init__(now)
        self.path = path
        self._write()

    def advance(self, seconds: float) -> None:
        super().advance(seconds)
        self._write()

    def _write(self) -> None:
        temporary = self.path.with_suffix(".tmp")
        temporary.write_text(repr(self.now))
        temporary.replace(self.path)  # atomic: a replica reads the old time or the new


class ProcessReplica:
    def __init__(self, config: Path, logs: Path, clock_file: Path, every: int) -> None:
        self.config, self.logs, self.clock_file, self.every = config, logs, clock_file, every
        self.port = free_port()
        self._stack = ExitStack()
        self.process: Process | None = None

    async def start(self) -> None:
        env = clean_env(**{TEST_CLOCK_ENV: str(self.clock_file)})
        # Unmeasured by the suite's coverage: minutes of the serve code the other system
        # tests measure, a third slower traced (the suite's 15-minute budget).
        env.pop("COVERAGE_PROCESS_CONFIG", None)
        argv = [str(CLI), "serve", "--config", str(self.config), "--port", str(self.port)]
        self.process = self._stack.enter_context(started(argv, self.logs, env=env))
        await asyncio.to_thread(self.process.wait_http, f"{self.url}/readyz")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def stop(self, signum: int = signal.SIGTERM) -> None:
        if self.process is not None:
            process = self.process
            await asyncio.to_thread(process.stop, signum, group=signum == signal.SIGKILL)
            assert "Traceback" not in process.output, process.output
            self._stack.close()
            self.process = None

    async def ask(self, accounts: list[str], query: str = QUERY) -> list[dict[str, Any]]:
        async with httpx.AsyncClient(timeout=30) as client:
            response = await client.post(
                f"{self.url}/graphql", json={"query": query, "variables": {"ids": accounts}}
            )
        body = response.json()
        assert "errors" not in body, body
        results: list[dict[str, Any]] = body["data"]["balances"]["results"]
        return results

    async def settle(self) -> None:
        """Nothing to call in another process: `ProcessFleet.poll` waits on the database."""

    async def deliver(self) -> None:
        """The replica's own loop delivers (after every read it applies, and every 5 s)."""


class ProcessFleet(Fleet):
    def __init__(
        self,
        trace: Trace,
        prefix: str,
        journal_url: str,
        hooks_url: str,
        clock: FileClock,
        folder: Path,
        simulator_url: str,
    ) -> None:
        super().__init__(trace, prefix, journal_url, hooks_url, clock)
        self.folder, self.clock_file, self.simulator_url = folder, clock.path, simulator_url
        self.journal: Journal = open_journal(journal_url)
        self.kills = 0

    def config(self) -> Path:
        """The replicas' configuration file for the setting in force now."""
        settings = self.settings()
        path = self.folder / f"gateway-{self.every}.toml"
        path.write_text(toml_of(settings, self))
        return path

    def new_replica(self) -> ProcessReplica:
        return ProcessReplica(self.config(), self.folder / "logs", self.clock_file, self.every)

    async def kill(self, index: int) -> None:
        replica = self.replicas[index]
        assert isinstance(replica, ProcessReplica)
        await replica.stop(signal.SIGKILL)
        self.replicas[index] = None
        await self.start(index)
        self.kills += 1

    async def poll(self, index: int, name: str, available: Any, up: bool) -> None:
        before = len(self.reads)
        await super().poll(index, name, available, up)
        for read in self.reads[before:]:
            await self.applied(read)

    async def applied(self, read: oracle.Read) -> None:
        """Until the database shows `read` applied (its history, and its alert)."""
        balance = f"{account_of(self.prefix, read.balance)}:credit:{read.currency}"
        deadline = time.monotonic() + SETTLE_SECONDS
        while time.monotonic() < deadline:
            points, _ = await self.journal.database.run(
                "SELECT 1 FROM balance_points WHERE balance = ? AND at >= ?", (balance, read.at)
            )
            alert = read.balance not in self.rules
            if not alert:
                rows, _ = await self.journal.database.run(
                    "SELECT 1 FROM balance_alerts WHERE balance = ? AND observed_at >= ?",
                    (balance, read.at),
                )
                alert = bool(rows)
            if points and alert:
                return
            await asyncio.sleep(0.02)
        raise AssertionError(f"{read} not applied within {SETTLE_SECONDS} s")

    async def drain(self) -> None:
        """Until every delivery is delivered: the clock moves past each retry's wait."""
        like = (f"{self.prefix}-%",)
        deadline = time.monotonic() + 4 * SETTLE_SECONDS
        while time.monotonic() < deadline:
            rows, _ = await self.journal.database.run(
                "SELECT COUNT(*) FROM webhook_outbox WHERE state = 'pending' AND balance LIKE ?",
                like,
            )
            if rows[0][0] == 0:
                return
            # Past retry waits and expired claims, a little at a time: a receiver refuses a
            # timestamp more than 5 minutes from its clock (Standard Webhooks' tolerance).
            self.clock.advance(120)
            await asyncio.sleep(0.5)  # each replica's loop looks at least every 5 s
        raise AssertionError("deliveries still pending")

    async def close(self) -> None:
        await self.journal.close()


def toml_of(settings: Settings, fleet: ProcessFleet) -> str:
    """`Fleet.settings()` written as the TOML a replica loads (development profile)."""
    lines = [
        # No drain on SIGTERM: nothing but the test asks, and it waits for no answer then.
        '[server]\nprofile = "development"\ndrain_seconds = 0\n',
        f'[idempotency]\nurl = "{fleet.journal_url}"\n',
        f"[history]\nevery_seconds = {fleet.every}\nretention_days = 3650\n",
        f'[webhooks.ops]\nurl = "{fleet.hooks_url}"\nsecret = "{SECRET}"\n',
    ]
    for account in settings.accounts.values():
        lines.append(
            f'[accounts.{account.id}]\nprovider = "ourvoice"\n'
            f'base_url = "{fleet.simulator_url}/ourvoice"\ncurrency = "{account.currency}"\n'
            f'api_key = "{account.credentials["api_key"].reveal()}"\n'
        )
        for rule in account.thresholds:
            th = rule.thresholds
            entry = [f'asset = "{rule.asset}"', f'currency = "{th.currency}"']
            for key, money in (
                ("warning", th.warning),
                ("critical", th.critical),
                ("hysteresis", th.hysteresis),
            ):
                if money is not None:
                    entry.append(f'{key} = "{format(money.amount, "f")}"')
            lines.append(f"[[accounts.{account.id}.thresholds]]\n" + "\n".join(entry) + "\n")
    return "\n".join(lines)


__all__ = ["REPLICAS", "FileClock", "ProcessFleet"]
