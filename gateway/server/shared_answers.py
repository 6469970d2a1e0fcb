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
running fails, is refused, late or cancelled (its client left), each waiting request runs
on its own, as it would have without this. A waiting request keeps its own deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator

from gateway.cache.responses import StoredResponse

Share = Callable[[StoredResponse], None]


class SharedAnswers:
    def __init__(self) -> None:
        self._running: dict[str, asyncio.Future[StoredResponse | None]] = {}

    def running(self, key: str) -> asyncio.Future[StoredResponse | None] | None:
        """The answer to come of a request with this key already running, if one is."""
        return self._running.get(key)

    @contextlib.contextmanager
    def leading(self, key: str) -> Iterator[Share]:
        """Runs the request whose answer others with `key` wait for: it hands its answer
        on (`share`) if it is complete; leaving without, they run on their own."""
        future: asyncio.Future[StoredResponse | None] = asyncio.get_running_loop().create_future()
        self._running[key] = future

        def share(answer: StoredResponse) -> None:
            if not future.done():
                future.set_result(answer)

        try:
            yield share
        finally:
            if self._running.get(key) is future:
                del self._running[key]
            if not future.done():
                future.set_result(None)

    def __len__(self) -> int:
        return len(self._running)
