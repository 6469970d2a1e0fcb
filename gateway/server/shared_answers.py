"""Identical requests in flight together get one answer, made once.

Sixteen dashboards asking the same thing while its balances are being read all wait for
the same upstream reads (the balance cache's single flight); when those land, each would
then run the same document over the same values and encode the same bytes, one after
the other on one CPU — the last of them a dozen milliseconds after the reads (the
convoy). Instead, a request whose response-cache key matches a request already running
waits for that request's answer and sends the same bytes. The key is the response
cache's (`cache/responses.py`): the caller (its identity, so its scopes and the accounts
it may see), the generation of each of those accounts (a top-up or an invalidation in
between makes another key: a request that arrives after it never gets an answer made
before it) and the body as sent, byte for byte. So it is shared exactly where the
response cache would share — with `fresh_seconds = 0` too, where nothing is stored:
"concurrent identical requests share one call" (docs/configuration.md) holds for the
whole answer, not only the upstream read.

What is handed on is what the response cache would store — a 200 without GraphQL errors,
no account failed or stale — and only to a request that asked before the answer's first
balance stopped being fresh (`Context.fresh_until`: with `fresh_seconds = 0`, before its
first read landed; with `maxAgeSeconds`, within that age): a request never gets an answer
older than it would have got on its own. A request that is not handed the answer runs on
its own. When the request running ends without any answer — cancelled because its client
left, shed, late — the first of those waiting to wake takes its place (claimed before it
yields to the event loop, so the others wait for it rather than all running at once: the
clients of a load generator that stop together must not turn fifteen waiting requests
into fifteen running ones). A waiting request keeps its own deadline and takes no
admission slot: it costs the worker nothing.
"""

from __future__ import annotations

import asyncio

from gateway.cache.handout import Handout
from gateway.cache.responses import StoredResponse


class Declined:
    """The request ran to its end, but its answer is not one to hand on."""


DECLINED = Declined()
Outcome = tuple[StoredResponse, float] | Declined | None  # None: it ended without an answer


class Leader:
    """The request whose answer the others with its key wait for."""

    def __init__(self, answers: SharedAnswers, key: str) -> None:
        self._answers, self.key = answers, key
        self.future: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()

    def share(self, answer: StoredResponse, until: float) -> None:
        """Hands its answer to those waiting that asked by `until` (the gateway's clock)."""
        if not self.future.done():
            self.future.set_result((answer, until))

    def decline(self) -> None:
        """Done, with an answer not to hand on: those waiting run on their own."""
        if not self.future.done():
            self.future.set_result(DECLINED)

    def close(self) -> None:
        """Done however it ended: without an answer, the first waiting takes its place."""
        if self._answers._running.get(self.key) is self.future:
            del self._answers._running[self.key]
        if not self.future.done():
            self.future.set_result(None)


class SharedAnswers:
    def __init__(self, handout: Handout | None = None) -> None:
        self._handout = handout or Handout()  # the answer handed to its waiters
        self._running: dict[str, asyncio.Future[Outcome]] = {}
        self.waiting = 0  # requests waiting for another's answer now

    def running(self, key: str) -> asyncio.Future[Outcome] | None:
        """What a request with this key already running will end with, if one is."""
        return self._running.get(key)

    def lead(self, key: str) -> Leader:
        """The caller runs the request with `key`; others that come meanwhile wait for it.
        `close` the leader however the request ends."""
        leader = Leader(self, key)
        self._running[key] = leader.future
        return leader

    async def outcome(self, running: asyncio.Future[Outcome]) -> Outcome:
        """Waits for a running request's end (the wait cancelled, not the request)."""
        self.waiting += 1
        try:
            return await self._handout.wait(running)
        finally:
            self.waiting -= 1
