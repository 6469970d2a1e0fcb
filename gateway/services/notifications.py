"""Webhook notifications: one event when a balance crosses into WARNING or CRITICAL, one
when it recovers (back to OK) — never repeated while it stays there, across replicas and
restarts — signed, retried with backoff, each with a unique id receivers can drop
duplicates by. Everything lives in the journal's database:

- `balance_levels` holds each balance's last known level. A change is recorded by
  compare-and-set (`UPDATE … WHERE level = <the level read>`, or an insert that must be
  the first): of all replicas that see the same change, exactly one wins, and only the
  winner creates the event. A balance first seen at WARNING or CRITICAL counts as a
  change from OK; one first seen at OK makes no event.
- `webhook_deliveries` holds one row per event per endpoint, `pending` until an endpoint
  answers 2xx (`delivered`) or `MAX_ATTEMPTS` have failed (`failed`, logged). A replica
  claims a due delivery by moving its `next_at` (compare-and-set) before sending, so two
  replicas never send it at once; a process that dies mid-send leaves the claim to expire
  and the delivery is retried — receivers drop the duplicate by its id.

The request (`POST`, `Content-Type: application/json`) carries `Webhook-Id` (the event's
id, the same on every retry), `Webhook-Timestamp` (Unix seconds) and `Webhook-Signature:
t=<timestamp>,v1=<hex>`, where hex is HMAC-SHA256 of `<timestamp>.<body>` with the
endpoint's secret — the scheme payment providers use; a receiver recomputes it and
refuses timestamps older than a few minutes.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime

from gateway.config.settings import WebhookSettings
from gateway.domain import AccountBalance, AccountBalanceResult, Balance, Level, Money
from gateway.metrics import Metrics
from gateway.services.journal import Database

log = logging.getLogger("gateway.services.notifications")
MAX_ATTEMPTS = 10
CLAIM_SECONDS = 30.0  # a claimed delivery is retried after this if its sender vanished
POLL_SECONDS = 5.0
QUEUE_SIZE = 1000
EVENT_TYPES = {
    Level.WARNING: "balance.warning",
    Level.CRITICAL: "balance.critical",
    Level.OK: "balance.recovered",
}
# POSTs a body to a URL with headers; the HTTP status, or raises when nothing came back
# (`gateway/upstream/webhooks.py` over httpx; services load no HTTP library themselves).
Post = Callable[[str, str, Mapping[str, str]], Awaitable[int]]


def backoff(attempts: int) -> float:
    """Seconds before the next attempt after `attempts` failed: 10 s, 30 s, 90 s, … 1 h."""
    return float(min(3600, 10 * 3 ** (attempts - 1)))


def signature(secret: str, timestamp: int, body: str) -> str:
    digest = hmac.new(secret.encode(), f"{timestamp}.{body}".encode(), hashlib.sha256)
    return f"t={timestamp},v1={digest.hexdigest()}"


def event_body(event_id: str, account: str, balance: Balance, previous: str, at: float) -> str:
    thresholds = balance.thresholds
    assert balance.level is not None and thresholds is not None

    def money(value: Money | None) -> dict[str, str] | None:
        if value is None:
            return None
        return {"amount": format(value.amount, "f"), "currency": value.currency}

    return json.dumps(
        {
            "id": event_id,
            "type": EVENT_TYPES[balance.level],
            "created_at": datetime.fromtimestamp(at, UTC).isoformat().replace("+00:00", "Z"),
            "data": {
                "account": account,
                "balance": balance.id,
                "asset": balance.asset.code,
                "kind": balance.asset.kind.value,
                "level": balance.level.value,
                "previous_level": previous,
                "available": money(balance.available),
                "thresholds": {
                    "warning": money(thresholds.warning),
                    "critical": money(thresholds.critical),
                },
            },
        },
        separators=(",", ":"),
    )


class Notifier:
    def __init__(
        self,
        db: Database,
        endpoints: Sequence[WebhookSettings],
        clock: Callable[[], float],
        post: Post,
        metrics: Metrics | None = None,
    ) -> None:
        self._db = db
        self.endpoints = {e.name: e for e in endpoints}
        self.clock = clock
        self._post = post
        self._attempts = (metrics or Metrics()).webhook_deliveries
        self._seen: dict[str, Level] = {}  # this process's last known level per balance
        self._queue: asyncio.Queue[tuple[str, Balance]] = asyncio.Queue(QUEUE_SIZE)

    def note(self, result: AccountBalanceResult) -> None:
        """Every answer the balance service reads: fresh levels that this process has not
        seen are checked against the database (off the request path)."""
        if not isinstance(result, AccountBalance) or result.stale:
            return
        for balance in result.balances:
            if balance.level is not None and self._seen.get(balance.id) is not balance.level:
                try:
                    self._queue.put_nowait((result.account.id, balance))
                except asyncio.QueueFull:
                    log.warning("notifications are behind: a level change waits for a later read")
                    return
                self._seen[balance.id] = balance.level

    async def observe(self, account: str, balance: Balance) -> str | None:
        """Record the balance's level; the new event's id if this caller recorded a change
        that notifies."""
        assert balance.level is not None
        now = self.clock()
        level = balance.level.value
        rows, _ = await self._db.run(
            "SELECT level FROM balance_levels WHERE balance = ?", (balance.id,)
        )
        if not rows:
            _, won = await self._db.run(
                "INSERT INTO balance_levels (balance, level, changed_at) VALUES (?, ?, ?) "
                "ON CONFLICT DO NOTHING",
                (balance.id, level, now),
            )
            previous = Level.OK.value
            if not won or balance.level is Level.OK:
                return None
        else:
            previous = rows[0][0]
            if previous == level:
                return None
            _, won = await self._db.run(
                "UPDATE balance_levels SET level = ?, changed_at = ? "
                "WHERE balance = ? AND level = ?",
                (level, now, balance.id, previous),
            )
            if not won:
                return None
        event_id = f"evt_{uuid.uuid4().hex}"
        body = event_body(event_id, account, balance, previous, now)
        for name in self.endpoints:
            await self._db.run(
                "INSERT INTO webhook_deliveries "
                "(id, endpoint, body, state, attempts, next_at) VALUES (?, ?, ?, 'pending', 0, ?)",
                (event_id, name, body, now),
            )
        log.info("balance %s: %s → %s (event %s)", balance.id, previous, level, event_id)
        return event_id

    async def deliver_due(self) -> int:
        """Send every delivery that is due (claimed first); the number delivered."""
        now = self.clock()
        rows, _ = await self._db.run(
            "SELECT id, endpoint, body, attempts, next_at FROM webhook_deliveries "
            "WHERE state = 'pending' AND next_at <= ? ORDER BY next_at",
            (now,),
        )
        delivered = 0
        for event_id, name, body, attempts, due in rows:
            endpoint = self.endpoints.get(name)
            if endpoint is None:
                continue  # an endpoint no longer configured: left as it is
            _, claimed = await self._db.run(
                "UPDATE webhook_deliveries SET next_at = ? "
                "WHERE id = ? AND endpoint = ? AND state = 'pending' AND next_at = ?",
                (now + CLAIM_SECONDS, event_id, name, due),
            )
            if not claimed:
                continue  # another replica is sending it
            error = await self._send(endpoint, event_id, body)
            if error is None:
                delivered += 1
                self._attempts.labels(name, "delivered").inc()
                await self._db.run(
                    "UPDATE webhook_deliveries SET state = 'delivered', attempts = ?, "
                    "last_error = NULL WHERE id = ? AND endpoint = ?",
                    (attempts + 1, event_id, name),
                )
                continue
            tries = attempts + 1
            state = "failed" if tries >= MAX_ATTEMPTS else "pending"
            self._attempts.labels(name, "failed" if state == "failed" else "retried").inc()
            if state == "failed":
                log.error(
                    "webhook %s: event %s not delivered after %d tries", name, event_id, tries
                )
            await self._db.run(
                "UPDATE webhook_deliveries SET state = ?, attempts = ?, next_at = ?, "
                "last_error = ? WHERE id = ? AND endpoint = ?",
                (state, tries, self.clock() + backoff(tries), error, event_id, name),
            )
        return delivered

    async def _send(self, endpoint: WebhookSettings, event_id: str, body: str) -> str | None:
        """None when the endpoint took it (2xx); otherwise what went wrong."""
        timestamp = int(self.clock())
        headers = {
            "Content-Type": "application/json",
            "Webhook-Id": event_id,
            "Webhook-Timestamp": str(timestamp),
            "Webhook-Signature": signature(endpoint.secret.reveal(), timestamp, body),
        }
        try:
            status = await self._post(endpoint.url, body, headers)
        except Exception as exc:  # no answer (refused, reset, timed out): retried
            return type(exc).__name__
        return None if 200 <= status < 300 else f"HTTP {status}"

    async def flush(self) -> None:
        """Until every queued level has been recorded."""
        await self._queue.join()

    async def run(self) -> None:
        """Record queued levels and send due deliveries, until cancelled."""
        while True:
            try:
                async with asyncio.timeout(POLL_SECONDS):
                    account, balance = await self._queue.get()
            except TimeoutError:
                pass
            else:
                try:
                    await self.observe(account, balance)
                except Exception:
                    log.exception("notifications: recording a level failed")
                    self._seen.pop(balance.id, None)  # looked at again on the next read
                finally:
                    self._queue.task_done()
            try:
                await self.deliver_due()
            except Exception:
                log.exception("notifications: sending failed")
