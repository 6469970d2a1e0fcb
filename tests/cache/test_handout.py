"""A result many wait for is handed to them a few per turn of the loop, and the loop reads
its sockets between two batches (`gateway/cache/handout.py`)."""

from __future__ import annotations

import asyncio
import gc
import socket
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from gateway.cache.handout import Handout


async def wake_order(
    wait_for: Callable[[asyncio.Future[Any]], Awaitable[Any]], waiters: int, outcome: Any
) -> list[Any]:
    """What happened, in order, after a flight with `waiters` waiting (each by
    `wait_for(flight)`) ended with `outcome` (a value, or an exception to raise): each
    waiter's ("woke", index, what it got) — and ("read",) when the loop read a request
    that arrived on a socket while the first waiter to wake was running."""
    loop = asyncio.get_running_loop()
    flight: asyncio.Future[Any] = loop.create_future()
    seen: list[Any] = []
    ours, theirs = socket.socketpair()

    async def wait(index: int) -> None:
        try:
            got: Any = await wait_for(flight)
        except Exception as error:
            got = error
        if not any(entry[0] == "woke" for entry in seen):
            theirs.send(b"a request")  # arrives while the waiters are running
        seen.append(("woke", index, got))

    def read() -> None:
        ours.recv(64)
        loop.remove_reader(ours.fileno())
        seen.append(("read",))

    try:
        loop.add_reader(ours.fileno(), read)
        tasks = [asyncio.create_task(wait(i)) for i in range(waiters)]
        await asyncio.sleep(0)  # all waiting
        if isinstance(outcome, BaseException):
            flight.set_exception(outcome)
        else:
            flight.set_result(outcome)
        await asyncio.gather(*tasks)
        await asyncio.sleep(0.01)
    finally:
        loop.remove_reader(ours.fileno())
        ours.close()
        theirs.close()
    return seen


async def test_a_result_is_handed_to_its_waiters_a_few_per_turn_with_sockets_read_between() -> None:
    seen = await wake_order(Handout(per_turn=4).wait, 20, "balances")
    woken = [entry for entry in seen if entry[0] == "woke"]
    assert woken == [("woke", i, "balances") for i in range(20)]  # all, in arrival order
    # The request that arrived while the first batch ran is read after that batch — not
    # after all twenty, as with `asyncio.shield` (every waiter in one turn; next test).
    assert seen.index(("read",)) == 4


async def test_with_shield_every_waiter_runs_before_a_socket_is_read() -> None:
    """The behaviour the handout replaces, measured the same way (the check can fail)."""
    seen = await wake_order(asyncio.shield, 20, "balances")
    assert seen.index(("read",)) == 20


async def test_every_waiter_gets_the_flights_error() -> None:
    failure = ValueError("the upstream said no")
    seen = await wake_order(Handout(per_turn=3).wait, 7, failure)
    assert [entry[2] for entry in seen if entry[0] == "woke"] == [failure] * 7
    assert seen.index(("read",)) == 3


async def test_a_cancelled_wait_leaves_the_flight_and_the_others_waiting() -> None:
    loop = asyncio.get_running_loop()
    flight: asyncio.Future[str] = loop.create_future()
    handout = Handout(per_turn=2)
    leaving = asyncio.create_task(handout.wait(flight))
    staying = [asyncio.create_task(handout.wait(flight)) for _ in range(3)]
    await asyncio.sleep(0)
    leaving.cancel()
    with pytest.raises(asyncio.CancelledError):
        await leaving
    assert not flight.done()  # the read goes on for the others
    flight.set_result("balances")
    assert await asyncio.gather(*staying) == ["balances"] * 3


async def test_a_wait_cancelled_after_its_result_landed_is_skipped() -> None:
    loop = asyncio.get_running_loop()
    flight: asyncio.Future[str] = loop.create_future()
    handout = Handout(per_turn=1)
    waits = [asyncio.create_task(handout.wait(flight)) for _ in range(3)]
    await asyncio.sleep(0)
    flight.set_result("balances")
    await asyncio.sleep(0)  # landed, none woken yet
    waits[1].cancel()
    assert await waits[0] == "balances"
    assert await waits[2] == "balances"
    assert waits[1].cancelled()


async def test_a_cancelled_flight_cancels_its_waiters() -> None:
    loop = asyncio.get_running_loop()
    flight: asyncio.Future[str] = loop.create_future()
    handout = Handout()
    waits = [asyncio.create_task(handout.wait(flight)) for _ in range(2)]
    await asyncio.sleep(0)
    flight.cancel()
    for wait in waits:
        with pytest.raises(asyncio.CancelledError):
            await wait


async def test_a_flight_that_fails_after_its_waiters_left_is_not_reported_unretrieved(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """As with `asyncio.shield`: the failure was handed to nobody, but it was read."""

    async def read() -> str:
        await asyncio.sleep(0)
        raise ValueError("late failure")

    handout = Handout()
    flight = asyncio.ensure_future(read())
    wait = asyncio.create_task(handout.wait(flight))
    await asyncio.sleep(0)
    wait.cancel()
    with pytest.raises(asyncio.CancelledError):
        await wait
    await asyncio.wait([flight])  # ended (`wait` reads no result)
    del flight
    gc.collect()
    assert "never retrieved" not in caplog.text


async def test_a_flight_already_done_is_answered_at_once() -> None:
    flight: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    flight.set_result("balances")
    assert await Handout().wait(flight) == "balances"


async def test_the_backlog_is_how_long_the_oldest_unwoken_waiter_has_had_its_result() -> None:
    now = [100.0]
    handout = Handout(per_turn=1, monotonic=lambda: now[0])
    loop = asyncio.get_running_loop()
    flight: asyncio.Future[str] = loop.create_future()
    waits = [asyncio.create_task(handout.wait(flight)) for _ in range(3)]
    await asyncio.sleep(0)
    assert handout.backlog_seconds() == 0.0  # nothing has landed
    flight.set_result("balances")
    await asyncio.sleep(0)  # landed at 100.0; none woken
    now[0] = 100.025
    assert handout.backlog_seconds() == pytest.approx(0.025)
    await asyncio.gather(*waits)
    assert handout.backlog_seconds() == 0.0
