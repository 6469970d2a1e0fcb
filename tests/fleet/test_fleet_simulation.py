"""A month in seconds: generated traces replayed against three gateway replicas sharing one
journal — PostgreSQL, and one SQLite file — on one injected clock, checked against the
reference model in `oracle.py` (written from the README's definitions, never from the code).

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
22) and `FLEET_EXAMPLES` (default 6 per database) set the run; a failure shrinks to a
minimal trace and prints it with the seed. The long profile is `make fleet` (README).
Restarts here stop an app through its lifespan; `kill -9` of real processes is in
`tests/system/test_fleet_signals.py`.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, note, seed, settings

from gateway.services.journal import open_journal
from tests.fleet import oracle
from tests.fleet.harness import Fleet, account_of, fleet_of
from tests.fleet.traces import Trace, traces
from tests.helpers import FakeClock, serving
from tests.webhook_receiver import Receiver

FLEET_SEED = int(os.environ.get("FLEET_SEED", "22"))
EXAMPLES = int(os.environ.get("FLEET_EXAMPLES", "6"))
STEPS = int(os.environ.get("FLEET_STEPS", "30"))
BALANCES = int(os.environ.get("FLEET_BALANCES", "3"))


class Tally:
    """What the runs covered, for the README's figures (printed by `make fleet`)."""

    traces = steps = reads = events = restarts = days = 0.0


TALLY = Tally()


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
        final = await fleet.replica(0).ask(accounts)
        for result in final:
            fleet.note(result, fleet.replica(0).every)
        await fleet.replica(0).settle()
        for _ in range(24):  # time for every retry to come due
            clock.advance(3600)
            await fleet.deliver()
        tables = await read_tables(journal_url, prefix)
    note(f"seed {FLEET_SEED}; reads {len(fleet.reads)}; received {len(receiver.got)}")
    check_history(fleet, trace, tables["history"])
    check_events(fleet, receiver, tables)
    check_runway(fleet, before_final, final, now)
    assert receiver.unverified == []
    TALLY.traces += 1
    TALLY.steps += len(trace.steps)
    TALLY.reads += len(fleet.reads)
    TALLY.events += len(oracle.alerts(fleet.reads, fleet.rules).events)
    TALLY.restarts += fleet.restarts
    TALLY.days += (trace.end() - trace.start) / 86400


async def read_tables(journal_url: str, prefix: str) -> dict[str, list[Any]]:
    """The tables as they are, read with a connection of the test's own."""
    journal = open_journal(journal_url)
    like = (f"{prefix}-%",)
    try:
        history, _ = await journal.database.run(
            "SELECT balance, at, total, available FROM balance_points WHERE balance LIKE ? "
            "ORDER BY balance, at",
            like,
        )
        levels, _ = await journal.database.run(
            "SELECT balance, level FROM balance_alerts WHERE balance LIKE ?", like
        )
        outbox, _ = await journal.database.run(
            "SELECT id, endpoint, balance, state FROM webhook_outbox WHERE balance LIKE ?", like
        )
    finally:
        await journal.close()
    return {"history": history, "levels": levels, "outbox": outbox}


def name_of(balance_id: str, fleet: Fleet) -> str:
    """`<prefix>-bal-N:credit:CUR` → `bal-N`."""
    return balance_id.split(":", maxsplit=1)[0].removeprefix(f"{fleet.prefix}-")


def check_history(fleet: Fleet, trace: Trace, rows: list[Any]) -> None:
    expected = oracle.history(fleet.reads, trace.every_schedule())
    found: dict[str, list[tuple[float, Decimal, Decimal]]] = {}
    for balance, at, total, available in rows:
        found.setdefault(name_of(balance, fleet), []).append(
            (round(float(at), 6), Decimal(total), Decimal(available))
        )
    wanted = {
        name: [(round(p.at, 6), p.total, p.available) for p in points]
        for name, points in expected.items()
        if points
    }
    assert found == wanted


def check_events(fleet: Fleet, receiver: Receiver, tables: dict[str, list[Any]]) -> None:
    outcome = oracle.alerts(fleet.reads, fleet.rules)
    received = receiver.events()  # each id once, in the order first received
    by_balance: dict[str, list[tuple[str, str, str, float]]] = {}
    for event in received:
        data = event["data"]
        by_balance.setdefault(name_of(data["balance"], fleet), []).append(
            (
                event["type"],
                data["previous_level"],
                data["level"],
                round(datetime.fromisoformat(data["read_at"]).timestamp(), 3),
            )
        )
    wanted: dict[str, list[tuple[str, str, str, float]]] = {}
    for e in outcome.events:
        wanted.setdefault(e.balance, []).append(
            (e.type.value, e.previous_level.value, e.level.value, round(e.at, 3))
        )
    assert by_balance == wanted
    outbox = tables["outbox"]
    assert len(outbox) == len(outcome.events)  # created once (one endpoint)
    assert all(state == "delivered" for _, _, _, state in outbox)
    assert {row[0] for row in outbox} == {e["id"] for e in received}
    levels = {name_of(balance, fleet): level for balance, level in tables["levels"]}
    assert levels == {
        name: outcome.levels[name].value for name in outcome.last_applied if name in fleet.rules
    }


def check_runway(
    fleet: Fleet, reads: list[oracle.Read], final: list[dict[str, Any]], now: float
) -> None:
    points = oracle.history(reads, fleet.trace.every_schedule())
    for result in final:
        if result["__typename"] != "AccountBalance":
            continue
        (balance,) = result["balances"]
        name = name_of(balance["id"], fleet)
        rule = fleet.rules.get(name)
        expected = oracle.runway(
            points.get(name, []),
            Decimal(balance["available"]["amount"]),
            now,
            rule.critical if rule is not None else None,
        )
        answered = balance["runway"]
        if expected is None or answered is None:
            assert answered is None and expected is None, (name, answered, expected)
            continue
        burn = Decimal(answered["burnPerDay"]["amount"])
        assert abs(burn - expected.burn_per_day) <= Decimal("0.01"), (name, burn, expected)
        zero = datetime.fromisoformat(answered["zeroAt"]).timestamp()
        assert abs(zero - expected.zero_at) <= 1, (name, answered, expected)
        since = datetime.fromisoformat(answered["since"]).timestamp()
        assert abs(since - expected.since) <= 1e-3, (name, answered, expected)
        if expected.critical_at is None:
            assert answered["criticalAt"] is None
        else:
            critical = datetime.fromisoformat(answered["criticalAt"]).timestamp()
            assert abs(critical - expected.critical_at) <= 1, (name, answered, expected)


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


@pytest.mark.parametrize("database", ["postgresql", "sqlite"])
@seed(FLEET_SEED)
@FLEET
@given(trace=traces(max_balances=BALANCES, max_steps=STEPS))
def test_the_fleet_matches_the_reference_model(
    database: str, trace: Trace, request: pytest.FixtureRequest, tmp_path_factory: Any
) -> None:
    if database == "postgresql":
        url: str = request.getfixturevalue("pg_url")
    else:
        url = f"sqlite:///{tmp_path_factory.mktemp('fleet') / 'journal.db'}"
    asyncio.run(replay(trace, url))
