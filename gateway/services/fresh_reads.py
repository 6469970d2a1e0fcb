"""Each fresh read of an account, queued once for a writer off the request path (the
history writer, the notifier): what the provider has just said — never a stale answer —
and the same read again (a cache hit, here or from another replica's fill) only once. A
bounded queue: past `size`, reads are dropped with one warning, and the next read of that
account is queued as usual. This memory only skips work: whether anything changed is
decided by the database the writer writes to."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime

from gateway.domain import AccountBalance, AccountBalanceResult, Balance

log = logging.getLogger("gateway.services.fresh_reads")
Read = tuple[str, tuple[Balance, ...], float]  # account, its balances, read at (Unix s)


class FreshReads:
    def __init__(
        self,
        size: int,
        behind: str,
        keep: Callable[[Balance], bool] = lambda balance: True,
    ) -> None:
        self._queue: asyncio.Queue[Read] = asyncio.Queue(size)
        self._queued: dict[str, datetime] = {}  # per account: the read last queued
        self._behind = behind  # the warning when the queue is full
        self._warned = False
        self._keep = keep  # which of a read's balances the writer wants

    def note(self, result: AccountBalanceResult) -> Read | None:
        """Every answer the balance service reads; the read queued, if it was."""
        if not isinstance(result, AccountBalance) or result.stale:
            return None
        account = result.account.id
        if self._queued.get(account) == result.fetched_at:
            return None  # the same read again: nothing new
        balances = tuple(b for b in result.balances if self._keep(b))
        read = None
        if balances:
            read = (account, balances, result.fetched_at.timestamp())
            try:
                self._queue.put_nowait(read)
            except asyncio.QueueFull:
                if not self._warned:
                    log.warning("%s", self._behind)
                    self._warned = True
                return None
        self._queued[account] = result.fetched_at
        return read

    async def get(self) -> Read:
        return await self._queue.get()

    def get_nowait(self) -> Read | None:
        """The next queued read, if one is waiting."""
        try:
            return self._queue.get_nowait()
        except asyncio.QueueEmpty:
            return None

    def queued(self) -> int:
        """How many reads wait to be written."""
        return self._queue.qsize()

    def done(self) -> None:
        self._queue.task_done()

    def again(self, account: str) -> None:
        """Writing a read failed: the account's next read is queued even if it is the same."""
        self._queued.pop(account, None)

    async def join(self) -> None:
        """Until every read queued so far is written."""
        await self._queue.join()
