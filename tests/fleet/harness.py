"""Replays a generated `Trace` against a fleet of real gateway apps sharing one journal, on
one injected clock, with the simulator's balances following the trace — and collects what
an outside observer can see: the fresh reads the replicas answered with, the webhooks a
receiver got, the history and alert tables, the runway each balance answers.

Each trace balance is an Our Voice account of its own (`<prefix>-bal-N`, one balance each,
in the trace's currency), so the balance ids are unique to the run. A replica is a whole
app (`create_app`, lifespan included) with a cache of its own; a restart stops it (its
lifespan's shutdown) and starts a new one with the setting then in force. The oracle in
`oracle.py` is never given anything from the gateway but what a client or a receiver sees.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol

import httpx

from gateway.app import create_app
from gateway.config.settings import Settings
from gateway.simulator import Simulator
from gateway.simulator.ourvoice import OurVoiceTenant
from gateway.simulator.state import SimState
from tests.fleet import oracle
from tests.fleet.traces import REPLICAS, Trace
from tests.helpers import FakeClock, no_sleep, ourvoice_fake, parse_settings
from tests.webhook_receiver import SECRET

QUERY = """query($ids: [ID!]) { balances(accountIds: $ids) { results {
  __typename ... on AccountBalance { account { id } fetchedAt stale
    balances { id total { amount } available { amount currency }
      runway { burnPerDay { amount } zeroAt criticalAt since } } } } } }"""
# The final question, asked by no poll: its answer is computed at the final moment, never a
# stored answer of a poll's (a stored answer is served as it was computed, runway included —
# docs/dashboard.md), so the runway checked is the runway at that moment.
FINAL = QUERY.replace("query(", "query Final(", 1)
RETENTION_DAYS = 3650  # nothing a trace makes is pruned (pruning has tests of its own)


def account_of(prefix: str, name: str) -> str:
    return f"{prefix}-{name}"


def rule_of(spec_thresholds: oracle.Thresholds, currency: str) -> dict[str, str] | None:
    """The `[[accounts.ID.thresholds]]` entry for a trace balance's rule — none where the
    configuration would refuse it (no level, or another currency than the account's: Our
    Voice's currency is known, so such a rule is a configuration error, tested elsewhere)."""
    th = spec_thresholds
    if (th.warning is None and th.critical is None) or th.currency not in (None, currency):
        return None
    rule = {"asset": currency, "currency": currency}
    for key, value in (("warning", th.warning), ("critical", th.critical)):
        if value is not None:
            rule[key] = format(value, "f")
    if th.hysteresis is not None:
        rule["hysteresis"] = format(th.hysteresis, "f")
    return rule


class Replicating(Protocol):
    """What a fleet needs of a replica, in-process (`Replica`) or an OS process."""

    every: int

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def ask(self, accounts: list[str], query: str = QUERY) -> list[dict[str, Any]]: ...

    async def settle(self) -> None: ...

    async def deliver(self) -> None: ...


class Fleet:
    """Replicas of one gateway configuration sharing `journal_url`."""

    def __init__(
        self, trace: Trace, prefix: str, journal_url: str, hooks_url: str, clock: FakeClock
    ) -> None:
        self.trace, self.prefix, self.clock = trace, prefix, clock
        self.journal_url, self.hooks_url = journal_url, hooks_url
        tenants = tuple(
            OurVoiceTenant(account_of(prefix, b.name), f"key-{prefix}-{b.name}", b.available, False)
            for b in trace.balances
        )
        self.sim = Simulator(SimState(clock=clock), tenants={"ourvoice": tenants})
        self.transport = httpx.ASGITransport(app=self.sim.app)
        self.currency = {b.name: b.currency for b in trace.balances}
        self.rules = {
            b.name: oracle.Thresholds(
                b.thresholds.warning, b.thresholds.critical, b.thresholds.hysteresis, b.currency
            )
            for b in trace.balances
            if rule_of(b.thresholds, b.currency) is not None
        }
        self.every = trace.every_seconds
        self.replicas: list[Replicating | None] = [None] * REPLICAS
        self.reads: list[oracle.Read] = []  # in the order the fleet applied them
        self._seen: dict[tuple[str, float], oracle.Read] = {}
        self.restarts = 0

    def settings(self) -> Settings:
        accounts: dict[str, Any] = {}
        for b in self.trace.balances:
            account: dict[str, Any] = {
                "provider": "ourvoice",
                "base_url": "https://simulator.example/ourvoice",
                "currency": b.currency,
                "api_key": f"key-{self.prefix}-{b.name}",
            }
            rule = rule_of(b.thresholds, b.currency)
            if rule is not None:
                account["thresholds"] = [rule]
            accounts[account_of(self.prefix, b.name)] = account
        data = {
            "server": {"profile": "development"},
            "idempotency": {"url": self.journal_url},
            "history": {"every_seconds": self.every, "retention_days": RETENTION_DAYS},
            "webhooks": {"ops": {"url": self.hooks_url, "secret": SECRET}},
            "accounts": accounts,
        }
        return parse_settings(data, env={})

    def new_replica(self) -> Replicating:
        return Replica(self.settings(), self.transport, self.clock, self.every)

    async def start(self, index: int) -> None:
        replica = self.new_replica()
        await replica.start()
        self.replicas[index] = replica

    async def stop(self, index: int) -> None:
        replica = self.replicas[index]
        if replica is not None:
            await replica.stop()
            self.replicas[index] = None

    async def restart(self, index: int) -> None:
        await self.stop(index)
        await self.start(index)
        self.restarts += 1

    def replica(self, index: int) -> Replicating:
        replica = self.replicas[index]
        assert replica is not None
        return replica

    async def poll(self, index: int, name: str, available: Decimal, up: bool) -> None:
        """The provider holds `available` (and answers, or fails); replica `index` is asked
        for the balance; a fresh read in its answer is noted, then written down."""
        account = account_of(self.prefix, name)
        ourvoice_fake(self.sim).balances[account] = available
        if up:
            self.sim.state.clear_faults(account)
        else:
            self.sim.state.set_faults(account, status=503)
        replica = self.replica(index)
        answer = await replica.ask([account])
        for result in answer:
            self.note(result, replica.every)
        await replica.settle()

    def note(self, result: dict[str, Any], every: int) -> None:
        if result["__typename"] != "AccountBalance" or result["stale"]:
            return
        name = result["account"]["id"].removeprefix(f"{self.prefix}-")
        at = datetime.fromisoformat(result["fetchedAt"]).timestamp()
        for balance in result["balances"]:
            read = oracle.Read(
                name,
                at,
                Decimal(balance["total"]["amount"]),
                Decimal(balance["available"]["amount"]),
                balance["available"]["currency"],
                every,
            )
            known = self._seen.get((name, at))
            if known is None:
                self._seen[(name, at)] = read
                self.reads.append(read)
            else:
                assert known == dataclasses.replace(read, every_seconds=known.every_seconds)

    async def deliver(self) -> None:
        for replica in self.replicas:
            if replica is not None:
                await replica.deliver()


class Replica:
    def __init__(
        self,
        settings: Settings,
        transport: httpx.AsyncBaseTransport,
        clock: FakeClock,
        every: int,
    ) -> None:
        self.settings, self.transport, self.clock, self.every = settings, transport, clock, every
        self._stack = AsyncExitStack()
        self.app: Any = None
        self.client: httpx.AsyncClient | None = None

    async def start(self) -> None:
        self.app = create_app(
            self.settings, transport=self.transport, clock=self.clock, sleep=no_sleep
        )
        await self._stack.enter_async_context(self.app.router.lifespan_context(self.app))
        self.client = await self._stack.enter_async_context(
            httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app), base_url="http://gw")
        )

    async def stop(self) -> None:
        await self._stack.aclose()

    async def ask(self, accounts: list[str], query: str = QUERY) -> list[dict[str, Any]]:
        assert self.client is not None
        response = await self.client.post(
            "/graphql", json={"query": query, "variables": {"ids": accounts}}
        )
        body = response.json()
        assert "errors" not in body, body
        results: list[dict[str, Any]] = body["data"]["balances"]["results"]
        return results

    async def settle(self) -> None:
        """Until what this replica queued is written (history, levels and their outbox)."""
        await self.app.state.recorder.flush()
        await self.app.state.notifier.flush()

    async def deliver(self) -> None:
        await self.app.state.notifier.deliver_due()


@asynccontextmanager
async def fleet_of(
    trace: Trace, prefix: str, journal_url: str, hooks_url: str, clock: FakeClock
) -> AsyncIterator[Fleet]:
    fleet = Fleet(trace, prefix, journal_url, hooks_url, clock)
    for index in range(REPLICAS):
        await fleet.start(index)
    try:
        yield fleet
    finally:
        for index in range(REPLICAS):
            await fleet.stop(index)
