"""Every replica hears at once of a balance that changed on any of them.

When the cache is shared (Redis), a replica that changed an account's balance — a refresh
read a new one, a top-up invalidated it — publishes the account's id on the namespace's
`changed` channel (`keys.CHANGED`), and each process keeps one subscription to it: what it
hears from another process goes to its listeners (its live streams re-read the account
through the shared cache, which already holds or has dropped the new value). What it
published itself it does not hear again: its own listeners were told directly.

The subscription runs beside the requests, never in their way: when Redis drops or refuses
it, a warning is logged once and it subscribes again after a wait that doubles from
`FIRST_WAIT_SECONDS` to `MAX_WAIT_SECONDS` (the injected sleep) — the gateway keeps
serving, and live streams fall back on their polls meanwhile. A change published while a
replica is not subscribed is not heard there (pub/sub keeps nothing): its streams see it at
their next poll. On an in-process store (`memory://`) there is nothing to publish to.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Awaitable, Callable

from gateway.cache import keys
from gateway.cache.store import Store, refusal

log = logging.getLogger("gateway.cache.changes")
Sleep = Callable[[float], Awaitable[None]]
FIRST_WAIT_SECONDS = 0.5
MAX_WAIT_SECONDS = 30.0


def wait_after(failures: int) -> float:
    """How long to wait before subscribing again after `failures` failures in a row."""
    return min(FIRST_WAIT_SECONDS * (1 << min(max(failures - 1, 0), 16)), MAX_WAIT_SECONDS)


def parse(message: str, origin: str) -> str | None:
    """The account a message names, unless this process (`origin`) published it."""
    sender, _, account = message.partition(" ")
    if sender == origin or not account:
        return None
    return account


class ChangeFeed:
    def __init__(self, store: Store, sleep: Sleep) -> None:
        self.store = store
        self.sleep = sleep
        self.origin = secrets.token_hex(8)  # this process's messages
        self.heard: list[Callable[[str], None]] = []  # told of another process's change
        self.subscribed = asyncio.Event()  # set while the subscription is confirmed

    async def announce(self, account_id: str) -> None:
        """Tell every other process that `account_id`'s balance changed (bounded by the
        store's timeout; nothing when the store is not shared or Redis fails)."""
        if self.store.shared:
            await self.store.publish(keys.CHANGED, f"{self.origin} {account_id}")

    async def run(self) -> None:
        """Hear other processes' changes, subscribing again whenever Redis drops the
        subscription, until cancelled. Returns at once on an in-process store."""
        if not self.store.shared:
            return
        failures = 0
        while True:
            try:
                async with self.store.subscription(keys.CHANGED) as messages:
                    if failures:
                        log.warning("balance changes: subscribed to Redis again")
                    failures = 0
                    self.subscribed.set()
                    async for message in messages:
                        self._hear(message)
            except Exception as exc:
                if failures == 0:
                    why = refusal(exc) or type(exc).__name__
                    log.warning(
                        "balance changes: the Redis subscription failed (%s); until it is "
                        "back, this process's live streams see other replicas' changes at "
                        "their next poll",
                        why,
                    )
            self.subscribed.clear()
            failures += 1
            await self.sleep(wait_after(failures))

    def _hear(self, message: str) -> None:
        account = parse(message, self.origin)
        if account is None:
            return
        for listener in self.heard:
            try:
                listener(account)
            except Exception:  # a bug: the subscription stays
                log.exception("balance changes: a listener failed on %r", account[:64])
