"""The fleet simulation with real processes: three `balance-gateway serve` replicas sharing
this run's PostgreSQL schema (and again one SQLite file), on one test clock they read from a file, restarted (SIGTERM)
and killed (`kill -9`) where the generated trace says — checked against the reference model
exactly as the in-process fleet is (`tests/fleet/checks.py`). Also: the production profile
refuses the test clock."""

from __future__ import annotations

import asyncio
import os
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, note, seed, settings

from gateway.simulator import Simulator
from gateway.simulator.ourvoice import OurVoiceTenant
from gateway.simulator.state import SimState
from tests.fleet import oracle
from tests.fleet.checks import check_all, read_tables
from tests.fleet.harness import FINAL, account_of
from tests.fleet.process_fleet import FileClock, ProcessFleet
from tests.fleet.traces import REPLICAS, Trace, traces
from tests.helpers import serving
from tests.system.processes import CLI, SECRETS, clean_env, production_config
from tests.webhook_receiver import Receiver

FLEET_SEED = int(os.environ.get("FLEET_SEED", "22"))
LONG = os.environ.get("FLEET_PROFILE") == "long"  # make fleet: more and longer traces
EXAMPLES = int(os.environ.get("FLEET_PROCESS_EXAMPLES", "6" if LONG else "2"))


class Tally:
    traces = days = balances = reads = events = restarts = kills = 0.0


TALLY = Tally()


async def replay(trace: Trace, journal_url: str, folder: Path) -> None:
    prefix = f"p{uuid.uuid4().hex[:8]}"
    clock = FileClock(trace.start, folder / "clock")
    receiver = Receiver(clock=clock)
    receiver.statuses = [500 if i % 4 == 3 else 200 for i in range(100_000)]
    tenants = tuple(
        OurVoiceTenant(account_of(prefix, b.name), f"key-{prefix}-{b.name}", b.available, False)
        for b in trace.balances
    )
    sim = Simulator(SimState(clock=clock), tenants={"ourvoice": tenants})
    async with serving(receiver.app) as hooks, serving(sim.app) as simulator:
        fleet = ProcessFleet(trace, prefix, journal_url, f"{hooks}/hooks", clock, folder, simulator)
        fleet.sim = sim  # the simulator the replicas call (the harness sets its balances)
        try:
            for index in range(REPLICAS):
                await fleet.start(index)
            for step in trace.steps:
                clock.advance(step.advance)
                if step.every_seconds is not None:
                    fleet.every = step.every_seconds
                for index in step.kill:
                    await fleet.kill(index)
                for index in step.restart:
                    await fleet.restart(index)
                for poll in step.polls:
                    clock.advance(poll.gap)
                    assert step.balance is not None
                    await fleet.poll(poll.replica, step.balance, poll.available, poll.provider_up)
            before_final, now = list(fleet.reads), clock()
            accounts = [account_of(prefix, b.name) for b in trace.balances]
            final = await fleet.replica(0).ask(accounts, FINAL)
            for result in final:
                fleet.note(result, fleet.replica(0).every)
            for read in fleet.reads[len(before_final) :]:
                await fleet.applied(read)
            await fleet.drain()
            tables = await read_tables(journal_url, prefix)
        finally:
            for index in range(REPLICAS):
                await fleet.stop(index)
            await fleet.close()
    note(f"seed {FLEET_SEED}; kills {fleet.kills}; restarts {fleet.restarts}")
    check_all(fleet, trace, receiver, tables, before_final, final, now)
    TALLY.traces += 1
    TALLY.days += (trace.end() - trace.start) / 86400
    TALLY.balances += len(trace.balances)
    TALLY.reads += len(fleet.reads)
    TALLY.events += len(oracle.alerts(fleet.reads, fleet.rules).events)
    TALLY.restarts += fleet.restarts
    TALLY.kills += fleet.kills
    print(
        f"\nfleet[processes]: {TALLY.traces:.0f} traces, {TALLY.days:.1f} simulated days, "
        f"3 serve processes, {TALLY.balances:.0f} balances, {TALLY.reads:.0f} fresh reads, "
        f"{TALLY.events:.0f} events, {TALLY.restarts:.0f} restarts, {TALLY.kills:.0f} kill -9 "
        "— 0 mismatches"
    )


@pytest.mark.parametrize("database", ["postgresql", "sqlite"])
@seed(FLEET_SEED)
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    print_blob=True,
    suppress_health_check=list(HealthCheck),
    # No shrinking with processes (minutes per step): the failing trace is printed whole;
    # the in-process fleet shrinks the same traces to a minimal one.
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
)
@given(trace=traces(max_balances=5 if LONG else 2, max_steps=30 if LONG else 10))
def test_three_serve_processes_match_the_reference_model_through_restarts_and_kills(
    database: str, trace: Trace, request: pytest.FixtureRequest, tmp_path_factory: Any
) -> None:
    """On this run's PostgreSQL schema, and on one SQLite file the processes share."""
    folder = tmp_path_factory.mktemp("fleet")
    if database == "postgresql":
        url: str = request.getfixturevalue("pg_url")
    else:
        url = f"sqlite:///{folder / 'journal.db'}"
    asyncio.run(replay(trace, url, folder))


def test_the_production_profile_refuses_the_test_clock(tmp_path: Path) -> None:
    config = tmp_path / "gateway.toml"
    config.write_text(production_config("http://127.0.0.1:9", tmp_path / "journal.db"))
    (tmp_path / "clock").write_text("1750000000.0")
    env = clean_env(BALANCE_GATEWAY_TEST_CLOCK=str(tmp_path / "clock"), **SECRETS)
    argv = [str(CLI), "serve", "--config", str(config), "--port", "0"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, env=env, check=False)
    assert done.returncode != 0
    assert "BALANCE_GATEWAY_TEST_CLOCK is for tests" in done.stderr
    assert "Traceback" not in done.stderr
