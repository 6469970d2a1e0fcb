"""`/readyz`: can this process serve now? And the drain that turns it off.

Ready means: the lifespan has built everything (settings loaded, stores open); the journal
accepts writes when any account takes top-ups (money must not be taken in without a
record); and the process is not draining. A shared cache (Redis) that does not answer
makes the answer `degraded` but still ready: the gateway serves without it (every request
goes upstream, within the quotas), which beats taking every replica out of rotation at once.
One that answers but refuses the gateway — credentials revoked, an ACL that shrank, a
certificate that no longer verifies — makes it not ready (`refused`): that is a
configuration to fix, not an outage to ride out, and it must not pass silently as "no cache".

`Draining` is set on SIGTERM (`serving.py`): from then on `/readyz` is 503, so load
balancers stop sending new requests while the ones already routed are still served.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from gateway.cache.store import Store
from gateway.services.journal import Journal

log = logging.getLogger("gateway.readiness")
CHECK_TIMEOUT_SECONDS = 1.0


class Draining:
    """A one-way switch: set when the process has been asked to stop."""

    def __init__(self) -> None:
        self.active = False
        self.listeners: list[Callable[[], None]] = []  # told once, when draining starts

    def start(self) -> None:
        self.active = True
        for listener in self.listeners:
            listener()


@dataclass(frozen=True)
class Readiness:
    store: Store
    journal: Journal | None  # None: no account takes top-ups
    draining: Draining

    async def check(self) -> tuple[bool, dict[str, Any]]:
        """(ready, a JSON body saying why)."""
        if self.draining.active:
            return False, {"status": "draining"}
        checks: dict[str, str] = {}
        if self.store.shared:
            checks["cache"] = await self._cache()
        if self.journal is not None:
            checks["journal"] = "ok" if await self._writable(self.journal) else "unwritable"
        if checks.get("journal") == "unwritable" or checks.get("cache") == "refused":
            return False, {"status": "not_ready", "checks": checks}
        status = "degraded" if "unreachable" in checks.values() else "ready"
        return True, {"status": status, "checks": checks}

    async def _cache(self) -> str:
        try:
            async with asyncio.timeout(CHECK_TIMEOUT_SECONDS):
                reach, reason = await self.store.reach()
        except TimeoutError:
            return "unreachable"
        if reach == "refused":
            log.warning("readiness: Redis refuses this gateway: %s", reason)
        return reach

    @staticmethod
    async def _within(probe: Any) -> bool:
        try:
            async with asyncio.timeout(CHECK_TIMEOUT_SECONDS):
                return bool(await probe)
        except TimeoutError:
            return False

    @classmethod
    async def _writable(cls, journal: Journal) -> bool:
        async def probe() -> bool:
            try:
                await journal.check_writable()
            except Exception as exc:
                log.warning("readiness: the top-up journal refuses writes (%s)", exc)
                return False
            return True

        return await cls._within(probe())
