"""A month in seconds: generated traces replayed against three gateway replicas sharing one
journal — PostgreSQL, and one SQLite file — on one injected clock, checked against the
reference model in `oracle.py` (written from docs/dashboard.md's definitions, never from the code).

Checked for every trace: the history table holds exactly the last fresh read of every
bucket; every change of a balance's alert level made exactly one event, created once (one
outbox row per endpoint), delivered at least once under one id, in order per balance, with
the level, previous level and read time the model says, none inside a hysteresis band; the
stored levels are the model's; each balance's runway is the model's (burn per day to the
cent, dates to the second). The webhook receiver verifies every delivery with the
`standardwebhooks` library and refuses one in four at first (so deliveries are retried).

Hypothesis generates the traces (`tests/fleet/traces.py`): spending bursts, top-ups, flat
weeks, flapping at, inside and across thresholds, provider outages, replica restarts, a
change of `[history] every_seconds` with the fleet restarted. Seeded: `FLEET_SEED` (default
22) and `FLEET_EXAMPLES` (default 12 per database) set the run; a failure shrinks to a
minimal trace and prints it with the seed. The long profile is `make fleet` (docs/dashboard.md).
Restarts here stop an app through its lifespan; `kill -9` of real processes is in
`tests/system/test_fleet_signals.py`.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from typing import Any

import pytest
from hypothesis import HealthCheck, given, note, seed, settings

from tests.fleet import oracle
from tests.fleet.checks import TALLY, check_all, read_tables
from tests.fleet.harness import FINAL, account_of, fleet_of
from tests.fleet.traces import Trace, traces
from tests.helpers import FakeClock, serving
from tests.webhook_receiver import Receiver

FLEET_SEED = int(os.environ.get("FLEET_SEED", "22"))
LONG = os.environ.get("FLEET_PROFILE") == "long"  # make fleet
EXAMPLES = int(os.environ.get("FLEET_EXAMPLES", "8" if LONG else "12"))
# The bounded profile: 1-3 balances, 1-30 steps. The long one: 20 balances, 90-120 steps
# (a month or more of injected time each).
TRACES = (
    traces(min_balances=20, max_balances=20, min_steps=90, max_steps=120)
    if LONG
    else traces(max_balances=3, max_steps=30)
)


async def replay(trace: Trace, journal_url: str) -> None:
    prefix = f"f{uuid.uuid4().hex[:8]}"
    clock = FakeClock(trace.start)
    receiver = Receiver(clock=clock)
    receiver.statuses = [500 if i % 4 == 3 else 200 for i in range(100_000)]
    async with (
        serving(receiver.app) as url,
        fleet_of(trace, prefix, journal_url, f"{url}/hooks", clock) as fleet,
    ):
        for step in trace.steps:
            clock.advance(step.advance)
            if step.every_seconds is not None:
                fleet.every = step.every_seconds
            for index in (*step.kill, *step.restart):
                await fleet.restart(index)
            for poll in step.polls:
                clock.advance(poll.gap)
                assert step.balance is not None
                await fleet.poll(poll.replica, step.balance, poll.available, poll.provider_up)
                await fleet.deliver()
        before_final = list(fleet.reads)
        now = clock()
        accounts = [account_of(prefix, b.name) for b in trace.balances]
        final = await fleet.replica(0).ask(accounts, FINAL)
        for result in final:
            fleet.note(result, fleet.replica(0).every)
        await fleet.replica(0).settle()
        for _ in range(24):  # time for every retry to come due
            clock.advance(3600)
            await fleet.deliver()
        tables = await read_tables(journal_url, prefix)
    note(f"seed {FLEET_SEED}; reads {len(fleet.reads)}; received {len(receiver.got)}")
    check_all(fleet, trace, receiver, tables, before_final, final, now)
    TALLY.traces += 1
    TALLY.steps += len(trace.steps)
    TALLY.balances += len(trace.balances)
    TALLY.reads += len(fleet.reads)
    TALLY.events += len(oracle.alerts(fleet.reads, fleet.rules).events)
    TALLY.restarts += fleet.restarts
    TALLY.days += (trace.end() - trace.start) / 86400


FLEET = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    print_blob=True,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.function_scoped_fixture,
    ],
)


def journal(database: str, request: pytest.FixtureRequest, tmp_path_factory: Any) -> str:
    """This run's PostgreSQL schema, or a new SQLite file the replicas share."""
    if database == "postgresql":
        url: str = request.getfixturevalue("pg_url")
        return url
    return f"sqlite:///{tmp_path_factory.mktemp('fleet') / 'journal.db'}"


@pytest.mark.parametrize("database", ["postgresql", "sqlite"])
@seed(FLEET_SEED)
@FLEET
@given(trace=TRACES)
def test_the_fleet_matches_the_reference_model(
    database: str, trace: Trace, request: pytest.FixtureRequest, tmp_path_factory: Any
) -> None:
    before = TALLY.traces
    asyncio.run(replay(trace, journal(database, request, tmp_path_factory)))
    assert TALLY.traces == before + 1
    print(  # what the run covered (make fleet shows it)
        f"\nfleet[{database}]: {TALLY.traces:.0f} traces, {TALLY.days:.1f} simulated days, "
        f"3 replicas, {TALLY.balances:.0f} balances, {TALLY.steps:.0f} steps, "
        f"{TALLY.reads:.0f} fresh reads, {TALLY.events:.0f} events, "
        f"{TALLY.restarts:.0f} restarts — 0 mismatches"
    )
