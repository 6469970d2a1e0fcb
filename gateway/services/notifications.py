"""Webhook notifications: one event each time a balance's alert level changes — into
WARNING or CRITICAL, and back to OK (`balance.recovered`) — with hysteresis
(`alert_levels.py`), and one `daily_close.unexplained` per balance and day whose close is
UNEXPLAINED (`close_watch.py`), exactly once across replicas and restarts, delivered at least once,
in order per balance and endpoint, signed per Standard Webhooks. Everything lives in the
journal's database, which is the only memory that decides what is notified:

- `balance_alerts` holds each balance's alert level and the read time of the last fresh
  read applied to it. Every fresh read is applied by compare-and-set on (level, read time):
  of all replicas that read the same balance, each read is applied once, in read-time order
  (a read not newer than the last applied is ignored); a replica that loses the race reads
  again and re-applies. A balance first seen counts as coming from OK.
- A day's close event is created by whichever replica first inserts its (balance, day) into
  `daily_close_events`, in the transaction that writes its deliveries: a replica that
  closes the same day later finds the row and creates nothing.
- A level change and its deliveries (`webhook_outbox`, one row per event per endpoint) are
  written in one transaction: either both are stored or neither, so a failure in between
  (a locked database, a failover) loses no event — the next read tries again.
- A delivery is `pending` until its endpoint answers 2xx (`delivered`) or `MAX_ATTEMPTS`
  have failed (`failed`, logged). A replica claims a due delivery by moving its `next_at`
  (compare-and-set) before sending, so two replicas never send it at once; a process that
  dies mid-send leaves the claim to expire and the delivery is retried — receivers drop the
  duplicate by its id. An event is not sent while an earlier event of the same balance to
  the same endpoint is pending. Delivered and failed rows are deleted after the retention.

The request (`POST`, `Content-Type: application/json`) carries the Standard Webhooks
headers: `webhook-id` (the event's id, the same on every retry), `webhook-timestamp` (Unix
seconds) and `webhook-signature: v1,<base64 of HMAC-SHA256 over "<id>.<timestamp>.<body>">`
keyed by the endpoint's secret (`whsec_<base64 key>`), so receivers verify with any
Standard Webhooks library.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal

from gateway.config.settings import WebhookSettings
from gateway.config.webhook_secret import webhook_key
from gateway.domain import AccountBalanceResult, Balance, Level, Money
from gateway.observability.metrics import Metrics
from gateway.services.alert_levels import next_level
from gateway.services.daily_close import BalanceClose, CloseStatus
from gateway.services.fresh_reads import FreshReads
from gateway.services.journal import Database, Statements

log = logging.getLogger("gateway.services.notifications")
MAX_ATTEMPTS = 10
CLAIM_SECONDS = 30.0  # a claimed delivery is retried after this if its sender vanished
POLL_SECONDS = 5.0
QUEUE_SIZE = 1000
CAS_TRIES = 5  # replicas racing on one balance: each lost race reads the level again
DELIVERY_BATCH = 100  # deliveries sent per round, oldest first
MAX_ROUNDS = 10  # rounds per pass: a delivered event lets its balance's next one go
PRUNE_EVERY_SECONDS = 3600.0
EVENT_TYPES = {
    Level.WARNING: "balance.warning",
    Level.CRITICAL: "balance.critical",
    Level.OK: "balance.recovered",
}
CLOSE_EVENT = "daily_close.unexplained"
# POSTs a body to a URL with headers; the HTTP status, or raises when nothing came back
# (`gateway/upstream/webhooks.py` over httpx; services load no HTTP library themselves).
Post = Callable[[str, str, Mapping[str, str]], Awaitable[int]]


def backoff(attempts: int) -> float:
    """Seconds before the next attempt after `attempts` failed: 10 s, 30 s, 90 s, … 1 h."""
    return float(min(3600, 10 * 3 ** (attempts - 1)))


def signature(key: bytes, event_id: str, timestamp: int, body: str) -> str:
    """Standard Webhooks' `webhook-signature`: `v1,` and the base64 HMAC-SHA256 of
    `<id>.<timestamp>.<body>`."""
    signed = f"{event_id}.{timestamp}.{body}".encode()
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def _utc(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat().replace("+00:00", "Z")


def event_body(
    event_id: str,
    account: str,
    balance: Balance,
    level: Level,
    previous: Level,
    read_at: float,
    now: float,
) -> str:
    """The event's JSON: what changed, the amount that moved it, the thresholds."""
    thresholds = balance.thresholds
    assert thresholds is not None

    def money(value: Money | None) -> dict[str, str] | None:
        if value is None:
            return None
        return {"amount": format(value.amount, "f"), "currency": value.currency}

    return json.dumps(
        {
            "id": event_id,
            "type": EVENT_TYPES[level],
            "timestamp": _utc(now),
            "created_at": _utc(now),
            "data": {
                "account": account,
                "balance": balance.id,
                "asset": balance.asset.code,
                "kind": balance.asset.kind.value,
                "level": level.value,
                "previous_level": previous.value,
                "available": money(balance.available),
                "read_at": _utc(read_at),
                "thresholds": {
                    "warning": money(thresholds.warning),
                    "critical": money(thresholds.critical),
                    "hysteresis": money(thresholds.hysteresis),
                },
            },
        },
        separators=(",", ":"),
    )


def close_event_body(event_id: str, statement: BalanceClose, now: float) -> str:
    """The JSON of a `daily_close.unexplained` event: the balance's day, its figures as
    exact decimal strings in `currency`, and the findings."""

    def exact(value: Decimal | None) -> str | None:
        return None if value is None else format(value, "f")

    return json.dumps(
        {
            "id": event_id,
            "type": CLOSE_EVENT,
            "timestamp": _utc(now),
            "created_at": _utc(now),
            "data": {
                "account": statement.account_id,
                "balance": statement.balance_id,
                "day": statement.day.isoformat(),
                "zone": statement.zone,
                "status": statement.status.value,
                "unexplained": exact(statement.unexplained),
                "currency": statement.currency,
                "opening": exact(statement.opening),
                "expected_closing": exact(statement.expected_closing),
                "closing": exact(statement.closing),
                "findings": [
                    {
                        "kind": f.kind.value,
                        "amount": exact(f.amount),
                        "row_id": f.row_id,
                        "note": f.note,
                    }
                    for f in statement.findings
                ],
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
        retention_days: int = 90,
    ) -> None:
        self._db = db
        self.endpoints = {e.name: e for e in endpoints}
        self.clock = clock
        self._post = post
        self._attempts = (metrics or Metrics()).webhook_deliveries
        self.retention_seconds = retention_days * 86400.0
        # Each fresh read of balances with thresholds, once, applied off the request path:
        # nothing in this process decides whether a level changed — the database does.
        self.reads = FreshReads(
            QUEUE_SIZE,
            "notifications are behind: a level change waits for a later read",
            keep=lambda balance: balance.thresholds is not None,
        )
        self._sending = asyncio.Lock()

    def note(self, result: AccountBalanceResult) -> None:
        self.reads.note(result)

    async def observe(self, account: str, balance: Balance, at: float) -> str | None:
        """Apply one fresh read (read at `at`) to the balance's stored alert level; the new
        event's id when it changed the level."""
        assert balance.thresholds is not None
        for _ in range(CAS_TRIES):
            rows, _ = await self._db.run(
                "SELECT level, observed_at FROM balance_alerts WHERE balance = ?", (balance.id,)
            )
            if rows and at <= float(rows[0][1]):
                return None  # a read not newer than the last applied one: superseded
            stored = Level(rows[0][0]) if rows else Level.OK
            level = next_level(balance.thresholds, stored, balance.available)
            if level is None:
                return None  # another currency than the thresholds': nothing to compare
            async with self._db.transaction() as tx:
                now = self.clock()
                if not rows:
                    _, won = await tx.run(
                        "INSERT INTO balance_alerts "
                        "(balance, account, level, observed_at, changed_at) "
                        "VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                        (balance.id, account, level.value, at, now),
                    )
                elif level is stored:
                    _, won = await tx.run(
                        "UPDATE balance_alerts SET observed_at = ? "
                        "WHERE balance = ? AND level = ? AND observed_at = ?",
                        (at, balance.id, stored.value, rows[0][1]),
                    )
                else:
                    _, won = await tx.run(
                        "UPDATE balance_alerts SET level = ?, observed_at = ?, changed_at = ? "
                        "WHERE balance = ? AND level = ? AND observed_at = ?",
                        (level.value, at, now, balance.id, stored.value, rows[0][1]),
                    )
                if not won:
                    continue  # another replica applied a read first: read it again
                if level is stored:
                    return None
                return await self._create(tx, account, balance, level, stored, at, now)
        log.warning(
            "balance %s: its alert level is contended; the next read applies it", balance.id
        )
        return None

    async def _create(
        self,
        tx: Statements,
        account: str,
        balance: Balance,
        level: Level,
        previous: Level,
        at: float,
        now: float,
    ) -> str:
        """The event of a level change and one delivery per endpoint, in the transaction
        that records the change."""
        event_id = f"evt_{uuid.uuid4().hex}"
        body = event_body(event_id, account, balance, level, previous, at, now)
        await self._enqueue(tx, event_id, balance.id, at, now, body)
        log.info(
            "balance %s: %s → %s (event %s)", balance.id, previous.value, level.value, event_id
        )
        return event_id

    async def _enqueue(
        self, tx: Statements, event_id: str, balance: str, at: float, now: float, body: str
    ) -> None:
        """One pending delivery of the event per endpoint, due now."""
        for name in self.endpoints:
            await tx.run(
                "INSERT INTO webhook_outbox (id, endpoint, balance, at, created_at, body, "
                "state, attempts, next_at) VALUES (?, ?, ?, ?, ?, ?, 'pending', 0, ?)",
                (event_id, name, balance, at, now, body, now),
            )

    async def close_unexplained(self, statement: BalanceClose) -> str | None:
        """The `daily_close.unexplained` event of an UNEXPLAINED day of a balance, created
        by the first replica to record (balance, day), with its deliveries, in one
        transaction; None when the day is not UNEXPLAINED or its event already exists."""
        if statement.status is not CloseStatus.UNEXPLAINED:
            return None
        event_id = f"evt_{uuid.uuid4().hex}"
        async with self._db.transaction() as tx:
            now = self.clock()
            _, won = await tx.run(
                "INSERT INTO daily_close_events (balance, day, account, event, created_at) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                (
                    statement.balance_id,
                    statement.day.isoformat(),
                    statement.account_id,
                    event_id,
                    now,
                ),
            )
            if not won:
                return None  # another replica (or an earlier pass) created it
            body = close_event_body(event_id, statement, now)
            await self._enqueue(tx, event_id, statement.balance_id, now, now, body)
        log.info(
            "balance %s: the close of %s is UNEXPLAINED by %s %s (event %s)",
            statement.balance_id,
            statement.day.isoformat(),
            statement.unexplained,
            statement.currency,
            event_id,
        )
        return event_id

    async def deliver_due(self) -> int:
        """Send every delivery that is due, each balance's in order (claimed first); the
        number delivered."""
        delivered = 0
        async with self._sending:  # one pass at a time in this process
            for _ in range(MAX_ROUNDS):
                sent = await self._deliver_round()
                delivered += sent
                if not sent:
                    break  # nothing more moved: what is left waits for its retry
        return delivered

    async def _deliver_round(self) -> int:
        """Send the due deliveries that are first in their balance's line, to the endpoints
        configured here (another endpoint's rows are left for the retention to delete)."""
        if not self.endpoints:
            return 0
        names = list(self.endpoints)
        marks = ", ".join("?" for _ in names)
        rows, _ = await self._db.run(
            "SELECT o.id, o.endpoint, o.body, o.attempts, o.next_at FROM webhook_outbox o "  # noqa: S608 - constants
            f"WHERE o.state = 'pending' AND o.next_at <= ? AND o.endpoint IN ({marks}) "
            "AND NOT EXISTS (SELECT 1 FROM webhook_outbox p WHERE p.endpoint = o.endpoint "
            "AND p.balance = o.balance AND p.state = 'pending' AND p.at < o.at) "
            "ORDER BY o.at LIMIT ?",
            (self.clock(), *names, DELIVERY_BATCH),
        )
        delivered = 0
        for event_id, name, body, attempts, due in rows:
            # Claimed for CLAIM_SECONDS from now, each one as its turn comes (not from the
            # round's start): the claim outlasts its own send, whatever came before it.
            claim = self.clock() + CLAIM_SECONDS
            _, claimed = await self._db.run(
                "UPDATE webhook_outbox SET next_at = ? "
                "WHERE id = ? AND endpoint = ? AND state = 'pending' AND next_at = ?",
                (claim, event_id, name, due),
            )
            if not claimed:
                continue  # another replica is sending it
            error = await self._send(self.endpoints[name], event_id, body)
            tries = attempts + 1
            if error is None:
                state, next_at, outcome = "delivered", claim, "delivered"
            elif tries >= MAX_ATTEMPTS:
                state, next_at, outcome = "failed", claim, "failed"
            else:
                state, next_at, outcome = "pending", self.clock() + backoff(tries), "retried"
            # Only while the claim is still ours: a replica that took the delivery over
            # after the claim expired has the last word (a late answer never undoes it).
            _, recorded = await self._db.run(
                "UPDATE webhook_outbox SET state = ?, attempts = ?, next_at = ?, last_error = ? "
                "WHERE id = ? AND endpoint = ? AND state = 'pending' AND next_at = ?",
                (state, tries, next_at, error, event_id, name, claim),
            )
            self._attempts.labels(name, outcome).inc()
            if error is None:
                delivered += 1
            elif state == "failed" and recorded:
                log.error(
                    "webhook %s: event %s not delivered after %d tries", name, event_id, tries
                )
        return delivered

    async def _send(self, endpoint: WebhookSettings, event_id: str, body: str) -> str | None:
        """None when the endpoint took it (2xx); otherwise what went wrong."""
        timestamp = int(self.clock())
        key = webhook_key(endpoint.secret.reveal())
        headers = {
            "Content-Type": "application/json",
            "webhook-id": event_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": signature(key, event_id, timestamp, body),
        }
        try:
            status = await self._post(endpoint.url, body, headers)
        except Exception as exc:  # no answer (refused, reset, timed out): retried
            return type(exc).__name__
        return None if 200 <= status < 300 else f"HTTP {status}"

    async def prune(self, now: float) -> int:
        """Delete, past the retention, delivered and failed deliveries — and those still
        pending for an endpoint no longer configured (never sent; months-old news)."""
        names = list(self.endpoints) or [""]
        marks = ", ".join("?" for _ in names)
        _, deleted = await self._db.run(
            "DELETE FROM webhook_outbox WHERE created_at < ? "  # noqa: S608 - constants
            f"AND (state <> 'pending' OR endpoint NOT IN ({marks}))",
            (now - self.retention_seconds, *names),
        )
        await self._db.run(
            "DELETE FROM daily_close_events WHERE created_at < ?", (now - self.retention_seconds,)
        )
        return deleted

    async def flush(self) -> None:
        """Until every queued read has been applied."""
        await self.reads.join()

    async def apply(self, account: str, balances: tuple[Balance, ...], at: float) -> None:
        for balance in balances:
            try:
                await self.observe(account, balance, at)
            except Exception:
                log.exception("notifications: applying a read of %s failed", balance.id)
                self.reads.again(account)

    async def run(self) -> None:
        """Apply queued reads, send due deliveries and prune, until cancelled."""
        pruned = 0.0
        while True:
            try:
                async with asyncio.timeout(POLL_SECONDS):
                    account, balances, at = await self.reads.get()
            except TimeoutError:
                pass
            else:
                try:
                    await self.apply(account, balances, at)
                finally:
                    self.reads.done()
            try:
                await self.deliver_due()
                if self.clock() - pruned >= PRUNE_EVERY_SECONDS:
                    pruned = self.clock()
                    await self.prune(pruned)
            except Exception:
                log.exception("notifications: sending failed")
