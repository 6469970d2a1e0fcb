"""Yesterday's close of every account, computed in the background (`[daily_close] watch`):
what `gateway_daily_close_unexplained` exports and what raises `daily_close.unexplained`.

When: for each account, the day to close is the one before the local day of (now −
`after_minutes`) in the account's `reporting_timezone` — so the close of a day is computed
once, `after_minutes` after the next local midnight (late readings and rows have been
written by then), and at start-up for the last day over. A close the provider could not
back (its balances or statement unreadable) is tried again every `RETRY_SECONDS`, at
most `MAX_TRIES` times a day; a close that is INCOMPLETE for want of readings is final
(readings of the past never arrive later). One account at a time: at most one close per
account per try, never one per scrape — a scrape reads what was computed.

Each replica computes its own closes (its gauge is its own); the event of an UNEXPLAINED
balance is created once across replicas by the database (`Notifier.close_unexplained`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from gateway.clock import Clock
from gateway.services.daily_close import AccountClose, DailyCloseService, local_day
from gateway.services.gauges import MAX_BALANCES
from gateway.services.notifications import Notifier

log = logging.getLogger("gateway.services.close_watch")
POLL_SECONDS = 60.0
RETRY_SECONDS = 1800.0
MAX_TRIES = 4


@dataclass(frozen=True)
class _Tried:
    day: date
    tries: int
    again_at: float | None  # None: final for the day


def unreadable(close: AccountClose) -> bool:
    """The provider could not back the close: its balances or its statement unreadable."""
    return close.problem is not None or any(
        m.startswith("statement") for s in close.statements for m in s.missing
    )


class CloseWatch(Collector):
    def __init__(
        self,
        service: DailyCloseService,
        accounts: Sequence[str],
        clock: Clock,
        after_seconds: float,
        notifier: Notifier | None = None,
    ) -> None:
        self.service = service
        self.accounts = list(accounts)
        self.clock = clock
        self.after_seconds = after_seconds
        self.notifier = notifier
        self.closes: dict[str, AccountClose] = {}  # the last close computed per account
        self._tried: dict[str, _Tried] = {}
        self._closing = asyncio.Lock()  # one pass at a time in this process

    def day_due(self, account_id: str) -> date:
        """The last day of the account whose close is due by now."""
        moment = datetime.fromtimestamp(self.clock() - self.after_seconds, UTC)
        return local_day(moment, self.service.zone(account_id)) - timedelta(days=1)

    async def due(self) -> list[AccountClose]:
        """Close each account's due day unless done (or tried too often); the closes made."""
        async with self._closing:
            return await self._due()

    async def _due(self) -> list[AccountClose]:
        made = []
        for account_id in self.accounts:
            day = self.day_due(account_id)
            tried = self._tried.get(account_id)
            same = tried is not None and tried.day == day
            if same and tried and (tried.again_at is None or self.clock() < tried.again_at):
                continue
            tries = tried.tries + 1 if same and tried else 1
            (close,) = await self.service.close(day, [account_id])
            again = unreadable(close) and tries < MAX_TRIES
            self._tried[account_id] = _Tried(
                day, tries, self.clock() + RETRY_SECONDS if again else None
            )
            self.closes[account_id] = close
            made.append(close)
            if self.notifier is not None:
                for statement in close.statements:
                    await self.notifier.close_unexplained(statement)
        return made

    async def run(self) -> None:
        """Close what is due every `POLL_SECONDS`, until cancelled."""
        while True:
            try:
                await self.due()
            except Exception:
                log.exception("daily close: computing yesterday's close failed")
            await asyncio.sleep(POLL_SECONDS)

    def collect(self) -> Iterator[Metric]:
        gauge = GaugeMetricFamily(
            "gateway_daily_close_unexplained",
            "Closing minus expected closing of each balance's last closed day, beyond what "
            "its statement does not list (absent when the day has no such figure).",
            labels=["account", "balance", "currency"],
        )
        for account_id, close in self.closes.items():
            for statement in close.statements[:MAX_BALANCES]:
                if statement.unexplained is not None:
                    gauge.add_metric(
                        [account_id, statement.balance_id, statement.currency],
                        float(statement.unexplained),
                    )
        yield gauge
