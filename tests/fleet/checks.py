"""What the fleet simulations check, against the reference model (`oracle.py`): given
the fresh reads the replicas answered with (in the order they were applied), the webhooks
the receiver got and the tables as a connection of the test's own reads them."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from gateway.services.journal import open_journal
from tests.fleet import oracle
from tests.fleet.harness import Fleet
from tests.fleet.traces import Trace
from tests.webhook_receiver import Receiver


class Tally:
    """What the runs covered, for the figures in docs/dashboard.md (printed by `make fleet`)."""

    traces = steps = reads = events = restarts = days = balances = 0.0


TALLY = Tally()


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


def check_all(
    fleet: Fleet,
    trace: Trace,
    receiver: Receiver,
    tables: dict[str, list[Any]],
    reads: list[oracle.Read],
    final: list[dict[str, Any]],
    now: float,
) -> None:
    """The fleet's run against the reference model: the history kept, the events sent (each
    delivery verified with the receivers' own library) and the runway answered."""
    check_history(fleet, trace, tables["history"])
    check_events(fleet, receiver, tables)
    check_runway(fleet, reads, final, now)
    assert receiver.unverified == []
