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

Only a complete answer is handed on: a 200 without GraphQL errors. When the request
running ends without one — failed, refused, shed, late, or cancelled because its client
left — the first of those waiting to wake takes its place (claimed before it yields to
the event loop, so the others join it rather than all running at once: the clients of a
load generator that stop together must not turn fifteen waiting requests into fifteen
running ones); it then passes the gate and runs as any request. A waiting request keeps
its own deadline and takes no admission slot: it costs the worker nothing.
"""

from __future__ import annotations

import asyncio

from gateway.cache.responses import StoredResponse


class Leader:
    """The request whose answer the others with its key wait for."""

    def __init__(self, answers: SharedAnswers, key: str) -> None:
        self._answers, self.key = answers, key
        self.future: asyncio.Future[StoredResponse | None] = (
            asyncio.get_running_loop().create_future()
        )

    def share(self, answer: StoredResponse) -> None:
        """Hands its answer to those waiting (a complete one: see the module's doc)."""
        if not self.future.done():
            self.future.set_result(answer)

    def close(self) -> None:
        """Done: those still waiting without an answer wake to run, one at a time."""
        if self._answers._running.get(self.key) is self.future:
            del self._answers._running[self.key]
        if not self.future.done():
            self.future.set_result(None)


class SharedAnswers:
    def __init__(self) -> None:
        self._running: dict[str, asyncio.Future[StoredResponse | None]] = {}

    def running(self, key: str) -> asyncio.Future[StoredResponse | None] | None:
        """The answer to come of a request with this key already running, if one is."""
        return self._running.get(key)

    def lead(self, key: str) -> Leader:
        """The caller runs the request with `key`; others that come meanwhile wait for it.
        `close` the leader however the request ends."""
        leader = Leader(self, key)
        self._running[key] = leader.future
        return leader

    def __len__(self) -> int:
        return len(self._running)
