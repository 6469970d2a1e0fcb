"""A result many wait for is handed to them a few per turn of the loop, and the loop reads
its sockets between two batches (`gateway/cache/handout.py`)."""

from __future__ import annotations

import asyncio
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


async def test_a_result_is_handed_to_its_waiters_a_few_at_a_time_with_sockets_read_between() -> (
    None
):
    seen = await wake_order(Handout(per_batch=4).wait, 20, "balances")
    woken = [entry for entry in seen if entry[0] == "woke"]
    assert woken == [("woke", i, "balances") for i in range(20)]  # all, in arrival order
    # The request that arrived while the first batch ran is read after that batch — not
    # after all twenty, as with the `asyncio.shield` the handout replaces (every waiter in
    # one turn: measured the same way, so the check tells the two apart).
    assert seen.index(("read",)) == 4
    shielded = await wake_order(asyncio.shield, 20, "balances")
    assert shielded.index(("read",)) == 20


async def test_every_waiter_gets_the_flights_error() -> None:
    failure = ValueError("the upstream said no")
    seen = await wake_order(Handout(per_batch=3).wait, 7, failure)
    assert [entry[2] for entry in seen if entry[0] == "woke"] == [failure] * 7
    assert seen.index(("read",)) == 3


async def test_a_cancelled_wait_leaves_the_flight_and_the_others_waiting() -> None:
    loop = asyncio.get_running_loop()
    flight: asyncio.Future[str] = loop.create_future()
    handout = Handout(per_batch=2)
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
    handout = Handout(per_batch=1)
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


class CountedFlight(asyncio.Future[str]):
    """A future that counts the callbacks left on it."""

    callbacks = 0

    def add_done_callback(self, fn: Any, *, context: Any = None) -> None:
        self.callbacks += 1
        super().add_done_callback(fn, context=context)

    def remove_done_callback(self, fn: Any) -> int:
        removed = super().remove_done_callback(fn)
        self.callbacks -= removed
        return removed


async def test_a_cancelled_wait_leaves_nothing_on_the_flight() -> None:
    """As `asyncio.shield`: clients that come and go while a slow read runs do not pile
    up on it (nor all run when it lands)."""
    flight = CountedFlight()
    handout = Handout()
    for _ in range(100):
        wait = asyncio.create_task(handout.wait(flight))
        await asyncio.sleep(0)
        wait.cancel()
        with pytest.raises(asyncio.CancelledError):
            await wait
    assert flight.callbacks == 0
    staying = asyncio.create_task(handout.wait(flight))
    await asyncio.sleep(0)
    flight.set_result("balances")
    assert await staying == "balances"


async def test_each_loop_hands_out_its_own() -> None:
    """One handout on two loops (an app whose lifespan runs again on another loop): a
    loop paused with waiters queued neither has them dropped by the other nor counts as
    its backlog, and wakes them all when it runs again."""
    handout = Handout(per_batch=1)
    other = asyncio.new_event_loop()
    queued: list[asyncio.Future[str]] = []

    async def left_queued() -> None:
        flight = asyncio.get_running_loop().create_future()
        queued.extend(asyncio.ensure_future(handout.wait(flight)) for _ in range(5))
        await asyncio.sleep(0)
        flight.set_result("theirs")
        await asyncio.sleep(0)  # landed; the loop pauses before all are woken

    async def the_rest() -> list[str]:
        async with asyncio.timeout(1):
            return await asyncio.gather(*queued)

    try:
        await asyncio.to_thread(other.run_until_complete, left_queued())
        assert sum(wait.done() for wait in queued) < 5  # some still queued on the other
        assert handout.backlog_seconds() == 0.0  # … which is not this loop's backlog
        flight: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        waits = [asyncio.create_task(handout.wait(flight)) for _ in range(3)]
        await asyncio.sleep(0)
        flight.set_result("ours")
        assert await asyncio.gather(*waits) == ["ours"] * 3
        assert handout.backlog_seconds() == 0.0
        assert await asyncio.to_thread(other.run_until_complete, the_rest()) == ["theirs"] * 5
    finally:
        other.close()


async def test_a_flight_already_done_is_answered_at_once() -> None:
    flight: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    flight.set_result("balances")
    assert await Handout().wait(flight) == "balances"


async def test_the_backlog_is_how_long_the_oldest_unwoken_waiter_has_had_its_result() -> None:
    now = [100.0]
    handout = Handout(per_batch=1, monotonic=lambda: now[0])
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
